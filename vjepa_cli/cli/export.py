"""`vjepa export`: a training checkpoint -> a model file (see `vjepa_cli.train.export`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._options import DtypeOpt, JsonOpt

HELP = "Export the EMA target encoder and the predictor of a training run or checkpoint."
EXAMPLES = """Examples:\n\n  vjepa export runs/tiny-cpu -o model.safetensors\n\n  vjepa export runs/tiny-cpu -o encoder.safetensors --no-predictor\n\n  vjepa export runs/vitl-rope/checkpoints/step_00090000.safetensors --format hf -o vjepa2-hf/\n\n  vjepa export model.safetensors --format onnx -o encoder.onnx"""


def command(
    checkpoint: Annotated[Path, typer.Argument(help="A training run directory (its latest checkpoint) or a checkpoint "
                                                    "file; with --format onnx also any model file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file (or folder with --format hf).")],
    which: Annotated[Literal["target", "context"], typer.Option(
        "--which", help="target (the EMA encoder) or context (the online encoder).")] = "target",
    no_predictor: Annotated[bool, typer.Option("--no-predictor", help="Leave the predictor out (as `vjepa convert "
                                                                      "--no-predictor`).")] = False,
    with_predictor: Annotated[bool, typer.Option("--with-predictor", hidden=True)] = False,
    dtype: DtypeOpt = "fp32",
    fmt: Annotated[Literal["vjepa", "hf", "onnx"], typer.Option("--format", help="vjepa (our safetensors), hf (a transformers VJEPA2Model "
                                                      "folder) or onnx (the encoder, dynamic batch; also from a "
                                                      "model file).")] = "vjepa",
    frames: Annotated[int | None, typer.Option("--frames", min=1, help="onnx: frames of the input clip "
                                                                        "(default: the model's).")] = None,
    size: Annotated[int | None, typer.Option("--size", min=1, help="onnx: crop side of the input clip "
                                                                    "(default: the model's).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.log import err_console
    from vjepa_cli.train.export import run_export

    if no_predictor and with_predictor:
        raise VjepaError("--no-predictor and --with-predictor contradict each other",
                         hint="the predictor is exported unless --no-predictor")
    res = run_export(checkpoint, output, which=which, with_predictor=not no_predictor, dtype=dtype, fmt=fmt,
                     overwrite=overwrite, frames=frames, size=size)
    if json_out:
        sys.stdout.write(json.dumps(res.__dict__) + "\n")
    elif res.format == "onnx":
        check = "" if res.onnx_max_abs_diff is None else f", ONNX Runtime max abs diff {res.onnx_max_abs_diff:.1e}"
        err_console().print(f"wrote {res.output}: encoder ({res.arch}, {res.encoder_params / 1e6:.2f} M params), "
                            f"batch dynamic{check}", highlight=False)
    else:
        err_console().print(
            f"wrote {res.output}: {res.which} encoder ({res.arch}, {res.encoder_params / 1e6:.2f} M params)"
            f"{' + predictor' if res.with_predictor else ''} from step {res.step} of {res.source}, {res.dtype}",
            highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="export", help=HELP, epilog=EXAMPLES)(command)
