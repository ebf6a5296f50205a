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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as one JSON object per line.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="fp32, bf16 or fp16.")]


def print_json(obj) -> None:
    """Write `obj` as one JSON line on stdout (the `--json` contract), flushed so pipelines see it at once."""
    sys.stdout.write(json.dumps(obj, default=float) + "\n")
    sys.stdout.flush()


DecoderOpt = Annotated[
    Path | None,
    typer.Option("--decoder", help="Decoder file (`vjepa decoder train`): draw the decoded predictions next to "
                                   "what happened."),
]
RenderOpt = Annotated[
    Path | None,
    typer.Option("--render", help="Picture of the decoded predictions: .png (a grid) or .mp4 (needs --decoder)."),
]


def check_render(decoder: Path | None, render: Path | None, default: Path) -> Path | None:
    """The picture to write: --render, else `default` when a --decoder is given; one line when they do not go
    together, the decoder file is missing or the picture's type is unknown (checked before any work)."""
    from vjepa_cli.errors import VjepaError

    if decoder is None:
        if render is not None:
            raise VjepaError("--render needs --decoder", hint="train one with `vjepa decoder train`")
        return None
    if not decoder.is_file():
        raise VjepaError(f"decoder file not found: {decoder}", hint="train one with `vjepa decoder train`")
    render = render or default
    if render.suffix.lower() not in (".png", ".mp4"):
        raise VjepaError(f"cannot render to {render.name}", hint="--render must end in .png or .mp4")
    return render
