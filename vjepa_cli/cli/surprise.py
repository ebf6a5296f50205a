"""`vjepa surprise`: per-window surprise of videos, and intuitive-physics pair scores (see `vjepa_cli.infer.surprise`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

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
from vjepa_cli.cli._options import DecoderOpt, DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, print_json

HELP = "Score per-window surprise of videos (and possible/impossible pairs)."
EXAMPLES = """Examples:\n\n  vjepa surprise video.mp4 --model model.safetensors -o surprise/\n\n  vjepa surprise --pairs physics_eval/ --model model.safetensors --frames 8 --frame-step 1 --context 2,4,6 --json"""

InputsArg = Annotated[list[str] | None, typer.Argument(help="Videos, folders, manifests, or - for paths on stdin.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Folder for <video>.csv/.png (or one .csv); "
                                                                       "needed for videos, not for --pairs.",
                                                show_default=False)]
ContextModelOpt = Annotated[
    Path | None,
    typer.Option("--context-model", help="Encode the context with this file's encoder (e.g. `vjepa export RUN "
                                         "--which context`), as the published protocol uses the online encoder."),
]
PairsOpt = Annotated[
    Path | None,
    typer.Option("--pairs", help="Score matched possible/impossible videos: a `vjepa synth --impossible` folder, "
                                 "a manifest with labels 0/1 in pairs, or a CSV with columns possible,impossible. "
                                 "Prints pairwise accuracy, AUROC and AUPRC with each curve's max, mean and "
                                 "peak (max / mean)."),
]
CombineOpt = Annotated[Literal["min", "mean"], typer.Option("--combine", help="Curve over context lengths: min "
                                                                             "(published) or mean.")]
NoPlotOpt = Annotated[bool, typer.Option("--no-plot", help="Write the CSV only.")]
PAIR_METRICS = ("pairwise_acc_max", "pairwise_acc_mean", "pairwise_acc_peak", "auroc_max", "auroc_mean",
                "auroc_peak", "auprc_max", "auprc_mean", "auprc_peak")


def command(
    inputs: InputsArg = None,
    output: OutputOpt = None,
    model: ModelOpt = None,
    context_model: ContextModelOpt = None,
    pairs: PairsOpt = None,
    context: ContextOpt = None,
    combine: CombineOpt = "min",
    frames: FramesOpt = 16,
    frame_step: ProtocolFrameStepOpt = None,
    fps: FpsOpt = None,
    stride: ProtocolStrideOpt = None,
    size: SizeOpt = None,
    resize: ResizeOpt = None,
    mask_index: MaskIndexOpt = 0,
    no_plot: NoPlotOpt = False,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    workers: WorkersOpt = None,
    decoder: DecoderOpt = None,
    render: Annotated[Path | None, typer.Option(
        "--render", help="With --decoder: the picture of the most surprising window, .png or .mp4 (default "
                         "<output>/<video>.decoded.png); with several videos, each one's name goes before the "
                         "suffix.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Per-window surprise (L1 between predicted and actual future features) of videos, and intuitive-physics scores."""
    from vjepa_cli.cli._eval_options import surprise_config
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.infer.surprise import read_pairs, run_surprise, score_pairs

    ctx = parse_contexts(context, [2, 4, 6, 8, 10])
    cfg = surprise_config(frames, frame_step, fps, stride, size, resize, ctx, combine, mask_index,
                          batch_size, device, dtype, workers)
    if pairs is None and not inputs:
        raise VjepaError("nothing to score", hint="give videos, or --pairs for a possible/impossible set")
    if pairs is None and output is None:
        raise VjepaError("no output folder for the surprise curves", hint="add -o FOLDER (one .csv/.png per video)")
    loaded = _decoder_model(decoder, render, pairs, model, cfg, context_model)
    with _windows_bar() as tick:
        if pairs is not None:
            res = score_pairs(read_pairs(pairs), cfg, model_path=model, on_windows=tick, context_model=context_model)
        else:
            stdin = sys.stdin if "-" in inputs else None
            result = run_surprise(inputs, output, cfg, model_path=model, stdin_lines=stdin, on_windows=tick,
                                  plot=not no_plot, context_model=context_model, model=loaded)
            if decoder is not None:
                from vjepa_cli.infer.render_prediction import render_surprise, surprise_render_paths

                paths = surprise_render_paths(result.rows, Path(output), render)
                drawn = render_surprise(loaded, result.curves, decoder, cfg, paths)
                for row, path in zip(result.rows, drawn, strict=True):
                    if path is not None:
                        row["render"] = path
    if pairs is not None:
        _render_pairs(res, ctx, json_out)
    else:
        _render_videos(result, json_out)


def _decoder_model(decoder, render, pairs, model, cfg, context_model):
    """With --decoder: the model, opened once and checked against the decoder before any work; else None."""
    from vjepa_cli.cli._options import check_render
    from vjepa_cli.errors import VjepaError

    check_render(decoder, render, Path("x.png"))
    if decoder is None:
        return None
    if pairs is not None:
        raise VjepaError("--decoder draws videos, not --pairs", hint="give the videos to draw as inputs")
    from vjepa_cli.infer.render_prediction import open_model_with_decoder

    return open_model_with_decoder(model, cfg, context_model, decoder)[0]


@contextlib.contextmanager
def _windows_bar() -> Iterator[Callable[[int], None]]:
    """A transient progress bar of windows scored; yields its `advance(n)`."""
    from vjepa_cli.log import progress

    with progress(transient=True) as bar:
        task = bar.add_task("windows", total=None, info="")
        yield lambda n: bar.advance(task, n)


def _render_pairs(res: dict, ctx: list[int], json_out: bool) -> None:
    from vjepa_cli.log import console

    if json_out:
        print_json(res)
        return
    console().print(f"{int(res['pairs'])} pairs, curve = {res['combined']} over contexts {ctx}:", highlight=False)
    for k in PAIR_METRICS:
        console().print(f"  {k:18s} {res[k]:.3f}", highlight=False)


def _render_videos(result, json_out: bool) -> None:
    """One line (or JSON object) per video; exit status 1 when any video failed."""
    from vjepa_cli.log import console, err_console

    for row in result.rows:
        if json_out:
            print_json(row)
        elif "error" in row:
            err_console().print(f"[red]failed[/] {row['path']}: {row['error']}", highlight=False)
        else:
            console().print(f"{row['path']}: {row['windows']} windows, surprise max {row['max']:.4f} mean "
                            f"{row['mean']:.4f} -> {row['csv']}", highlight=False)
            if "render" in row:
                console().print(f"  decoded most surprising window -> {row['render']}", highlight=False)
    if result.failed:
        err_console().print(f"{len(result.failed)} video(s) failed", highlight=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(name="surprise", help=HELP, epilog=EXAMPLES)(command)
