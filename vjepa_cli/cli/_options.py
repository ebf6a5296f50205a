"""Option aliases shared by several commands (one definition, one help text)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a recipe key, --set KEY=VALUE (repeatable; the keys are the "
                                     "recipe's, e.g. seed=1)."),
]
OutDirOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Folder for the outputs.")]
# Earlier spellings, still accepted but not shown (see CHANGELOG 0.2): one name per meaning in --help.
OldOutputDirOpt = Annotated[Path | None, typer.Option("--output-dir", hidden=True)]
JobsOpt = Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Parallel processes [default: 1].",
                                             show_default=False)]
OldWorkersOpt = Annotated[int | None, typer.Option("--workers", hidden=True)]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N (default: auto = cuda when available, "
                                              "else cpu).", show_default=False)
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
Dtype = Literal["fp32", "bf16", "fp16"]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="Precision of the weights (and of the compute).")]
TrainDtype = Literal["auto", "fp32", "bf16", "fp16"]
TrainDtypeOpt = Annotated[TrainDtype | None, typer.Option(
    "--dtype", help="Autocast precision of training (the recipe's setting; auto: bf16 on CUDA, fp32 on CPU).",
    show_default=False)]
ComputeDtypeOpt = Annotated[Dtype, typer.Option(
    "--dtype", help="Precision of the compute (autocast; the weights stay fp32).")]


def either(new, old, name: str, old_name: str):
    """The value of an option given under its name or its earlier (hidden) one; both at once is an error."""
    if old is None:
        return new
    if new is not None and new != old:
        from vjepa_cli.errors import VjepaError

        raise VjepaError(f"{name} and {old_name} are the same option: give it once")
    return old


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
