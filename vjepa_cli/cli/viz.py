"""`vjepa viz`: patch features coloured by their first 3 principal components (see `vjepa_cli.infer.viz`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._eval_options import (
    FpsOpt,
    FramesOpt,
    FrameStepOpt,
    ResizeOpt,
    SizeOpt,
    StrideOpt,
    window_config,
)
from vjepa_cli.cli._options import DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, print_json

HELP = "Colour patch features by their first 3 principal components (one row per level for V-JEPA 2.1 models)."
EXAMPLES = """Examples:\n\n  vjepa viz video.mp4 --model encoder.safetensors -o pca.mp4\n\n  vjepa viz video.mp4 --model encoder.safetensors -o pca.png --max-windows 2\n\n  vjepa viz photo.jpg --model vjepa2_1_vitb.safetensors -o levels.png --levels 0,3"""


def command(
    video: Annotated[Path, typer.Argument(help="Video or image file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="out.mp4 (every frame) or out.png (a strip).")],
    model: ModelOpt = None,
    frames: FramesOpt = 16,
    frame_step: FrameStepOpt = None,
    fps: FpsOpt = None,
    stride: StrideOpt = None,
    size: SizeOpt = None,
    resize: ResizeOpt = None,
    max_windows: Annotated[int | None, typer.Option("--max-windows", help="Stop after this many windows.")] = None,
    levels: Annotated[str | None, typer.Option("--levels", help="V-JEPA 2.1 models: 'all' (default) or levels like 0,3, one PCA row each.")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    json_out: JsonOpt = False,
) -> None:
    """Colour patch features by their first 3 principal components, beside the frames."""
    from vjepa_cli.config.extract import parse_levels
    from vjepa_cli.infer.viz import run_viz
    from vjepa_cli.log import err_console

    wcfg = window_config(frames, frame_step, fps, stride, size, resize, 1)
    res = run_viz(video, output, wcfg, model_path=model, device=device, dtype=dtype, max_windows=max_windows,
                  levels=None if levels is None else parse_levels(levels))
    if json_out:
        print_json(res)
    else:
        err_console().print(f"wrote {res['output']} ({res['windows']} windows, token grid {res['grid']})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="viz", help=HELP, epilog=EXAMPLES)(command)
