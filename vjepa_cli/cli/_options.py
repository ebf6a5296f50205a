"""Option aliases shared by several commands (one definition, one help text)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a recipe key, e.g. --set optim.lr=3e-4 (repeatable)."),
]
OutDirOpt = Annotated[Path | None, typer.Option("--output-dir", "-o", help="Directory for outputs.")]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu).")
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model", "-m", envvar="VJEPA_MODEL",
        help="Model file (ours, or anything `vjepa convert` reads). Default: $VJEPA_MODEL.",
    ),
]
RevisionOpt = Annotated[str | None, typer.Option(
    "--revision", help="Branch, tag or commit of a Hugging Face repo id given as the model.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as one JSON object per line.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="fp32, bf16 or fp16.")]


def print_json(obj) -> None:
    """Write `obj` as one JSON line on stdout (the `--json` contract), flushed so pipelines see it at once."""
    sys.stdout.write(json.dumps(obj, default=float) + "\n")
    sys.stdout.flush()
