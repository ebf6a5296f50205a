"""`vjepa predict`: predicted and actual future features of every window (see `vjepa_cli.infer.predict`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._eval_options import (
    BatchOpt,
    ContextOpt,
    FpsOpt,
    FramesOpt,
    MaskIndexOpt,
    ProtocolFrameStepOpt,
    ProtocolStrideOpt,
    ResizeOpt,
    SizeOpt,
    WorkersOpt,
    parse_contexts,
)
from vjepa_cli.cli._options import DecoderOpt, DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, RenderOpt

HELP = "Predict the features of the last frames of each window from its first --context frames."
EXAMPLES = """Examples:\n\n  vjepa predict video.mp4 --model model.safetensors -o pred.safetensors --frames 16 --context 8\n\n  vjepa predict video.mp4 -m model.safetensors -o pred.safetensors --decoder dec.safetensors --render pred.png"""


def command(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
    model: ModelOpt = None,
    context_model: Annotated[
        Path | None, typer.Option("--context-model", help="Encode the context with this file's encoder instead.")
    ] = None,
    context: ContextOpt = None,
    frames: FramesOpt = 16,
    frame_step: ProtocolFrameStepOpt = None,
    fps: FpsOpt = None,
    stride: ProtocolStrideOpt = None,
    size: SizeOpt = None,
    resize: ResizeOpt = None,
    mask_index: MaskIndexOpt = 0,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    workers: WorkersOpt = None,
    decoder: DecoderOpt = None,
    render: RenderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.cli._eval_options import surprise_config
    from vjepa_cli.cli._options import check_render
    from vjepa_cli.infer.predict import run_predict
    from vjepa_cli.log import console, err_console, progress

    ctx = parse_contexts(context, [frames // 2])  # default: half the window
    if len(ctx) != 1:
        from vjepa_cli.errors import VjepaError

        raise VjepaError(f"vjepa predict takes one context length, got {context}",
                         hint="give one, e.g. --context 8; `vjepa surprise` compares several")
    cfg = surprise_config(frames, frame_step, fps, stride, size, resize, ctx,
                          "min", mask_index, batch_size, device, dtype, workers)
    render = check_render(decoder, render, output.with_suffix(".png"))
    loaded = None
    if decoder is not None:  # the decoder must read this model: checked before any work
        from vjepa_cli.infer.render_prediction import open_model_with_decoder

        loaded, model = open_model_with_decoder(model, cfg, context_model, decoder)
    with progress(transient=True) as bar:
        task = bar.add_task("windows", total=None, info=video.name)
        res = run_predict(video, output, cfg, model_path=model, on_windows=lambda n: bar.advance(task, n),
                          context_model=context_model, model=loaded)
    if decoder is not None:
        from vjepa_cli.infer.render_prediction import render_predict

        res["render"] = render_predict(output, decoder, render, cfg)["render"]
    if json_out:
        console().print(json.dumps(res), highlight=False, soft_wrap=True)
    else:
        err_console().print(f"wrote {res['output']}: {res['windows']} windows, context {res['context_frames']} "
                             f"frames, mean L1 error {res['mean_error']:.4f}", highlight=False)
        if decoder is not None:
            err_console().print(f"decoded predictions: {res['render']}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="predict", help=HELP, epilog=EXAMPLES)(command)
