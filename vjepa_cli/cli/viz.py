"""`vjepa surprise`, `vjepa viz`, `vjepa viz-masks` (see `vjepa_cli.infer.surprise` and `vjepa_cli.infer.viz`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._eval_options import (
    BatchOpt,
    FpsOpt,
    FramesOpt,
    FrameStepOpt,
    ProtocolFrameStepOpt,
    ProtocolStrideOpt,
    ResizeOpt,
    SizeOpt,
    StrideOpt,
    WorkersOpt,
    window_config,
)
from vjepa_cli.cli._options import DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, SetOpt

SURPRISE_EXAMPLES = """Examples:\n\n  vjepa surprise video.mp4 --model model.safetensors -o surprise/\n\n  vjepa surprise --pairs physics_eval/ --model model.safetensors --frames 8 --frame-step 1 --context 2,4,6 --json"""
VIZ_EXAMPLES = """Examples:\n\n  vjepa viz video.mp4 --model encoder.safetensors -o pca.mp4\n\n  vjepa viz video.mp4 --model encoder.safetensors -o pca.png --max-windows 2"""
MASKS_EXAMPLES = """Example:\n\n  vjepa viz-masks recipes/tiny-cpu.yaml -o masks.png --samples 2"""


def _out(obj) -> None:
    sys.stdout.write(json.dumps(obj, default=float) + "\n")
    sys.stdout.flush()


def surprise(
    inputs: Annotated[list[str] | None, typer.Argument(help="Videos, folders, manifests, or - for paths on stdin.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for <video>.csv/.png (or one .csv).")] = Path("surprise"),
    model: ModelOpt = None,
    context_model: Annotated[
        Path | None,
        typer.Option("--context-model", help="Encode the context with this file's encoder (e.g. `vjepa export RUN "
                                             "--which context`), as the published protocol uses the online encoder."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help="Score matched possible/impossible videos: a `vjepa synth --impossible` folder, "
                                     "a manifest with labels 0/1 in pairs, or a CSV with columns possible,impossible. "
                                     "Prints pairwise accuracy, AUROC and AUPRC with each curve's max, mean and "
                                     "peak (max / mean)."),
    ] = None,
    context: Annotated[str, typer.Option("--context", help="Context lengths in frames, comma separated.")] = "2,4,6,8,10",
    combine: Annotated[str, typer.Option("--combine", help="Curve over context lengths: min (published) or mean.")] = "min",
    frames: FramesOpt = 16,
    frame_step: ProtocolFrameStepOpt = None,
    fps: FpsOpt = None,
    stride: ProtocolStrideOpt = None,
    size: SizeOpt = None,
    resize: ResizeOpt = None,
    mask_index: Annotated[int, typer.Option("--mask-index", help="Predictor mask token to use.")] = 0,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Write the CSV only.")] = False,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    workers: WorkersOpt = 1,
    json_out: JsonOpt = False,
) -> None:
    """Per-window surprise (L1 between predicted and actual future features) of videos, and intuitive-physics scores."""
    from vjepa_cli.cli._eval_options import surprise_config
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.infer.surprise import read_pairs, run_surprise, score_pairs
    from vjepa_cli.log import console, err_console, progress

    try:
        ctx = [int(c) for c in context.split(",") if c.strip()]
    except ValueError:
        raise VjepaError(f"bad --context '{context}'", hint="e.g. --context 2,4,6") from None
    cfg = surprise_config(frames, frame_step, fps, stride, size, resize, ctx, combine, mask_index,
                          batch_size, device, dtype, workers)
    if pairs is None and not inputs:
        raise VjepaError("nothing to score", hint="give videos, or --pairs for a possible/impossible set")
    with progress(transient=True) as bar:
        task = bar.add_task("windows", total=None, info="")
        tick = lambda n: bar.advance(task, n)  # noqa: E731
        if pairs is not None:
            res = score_pairs(read_pairs(pairs), cfg, model_path=model, on_windows=tick, context_model=context_model)
        else:
            stdin = sys.stdin if "-" in inputs else None
            result = run_surprise(inputs, output, cfg, model_path=model, stdin_lines=stdin, on_windows=tick,
                                  plot=not no_plot, context_model=context_model)
    if pairs is not None:
        if json_out:
            _out(res)
        else:
            console().print(f"{int(res['pairs'])} pairs, curve = {res['combined']} over contexts {ctx}:", highlight=False)
            for k in ("pairwise_acc_max", "pairwise_acc_mean", "pairwise_acc_peak", "auroc_max", "auroc_mean",
                      "auroc_peak", "auprc_max", "auprc_mean", "auprc_peak"):
                console().print(f"  {k:18s} {res[k]:.3f}", highlight=False)
        return
    for row in result.rows:
        if json_out:
            _out(row)
        elif "error" in row:
            err_console().print(f"[red]failed[/] {row['path']}: {row['error']}", highlight=False)
        else:
            console().print(f"{row['path']}: {row['windows']} windows, surprise max {row['max']:.4f} mean "
                            f"{row['mean']:.4f} -> {row['csv']}", highlight=False)
    if result.failed:
        err_console().print(f"{len(result.failed)} video(s) failed", highlight=False)
        raise typer.Exit(1)


def viz(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="out.mp4 (every frame) or out.png (a strip).")],
    model: ModelOpt = None,
    frames: FramesOpt = 16,
    frame_step: FrameStepOpt = None,
    fps: FpsOpt = None,
    stride: StrideOpt = None,
    size: SizeOpt = None,
    resize: ResizeOpt = None,
    max_windows: Annotated[int | None, typer.Option("--max-windows", help="Stop after this many windows.")] = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Colour patch features by their first 3 principal components, beside the frames."""
    from vjepa_cli.infer.viz import run_viz
    from vjepa_cli.log import err_console

    wcfg = window_config(frames, frame_step, fps, stride, size, resize, 1)
    res = run_viz(video, output, wcfg, model_path=model, device=device, max_windows=max_windows)
    if json_out:
        _out(res)
    else:
        err_console().print(f"wrote {res['output']} ({res['windows']} windows, token grid {res['grid']})", highlight=False)


def viz_masks(
    recipe: Annotated[Path, typer.Argument(help="Pretraining recipe (YAML) whose masks to draw.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .png.")] = Path("masks.png"),
    video: Annotated[Path | None, typer.Option("--video", help="Draw on this video (default: a synthetic clip).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="How many batches' masks to draw.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Mask seed (default: the recipe's).")] = -1,
    sets: SetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Draw what a recipe's masks hide: context tokens as they are, targets red, dropped tokens dark."""
    from vjepa_cli.infer.viz_masks import run_viz_masks
    from vjepa_cli.log import err_console

    res = run_viz_masks(recipe, output, sets or [], video=video, samples=samples, seed=None if seed < 0 else seed)
    if json_out:
        _out(res)
    else:
        err_console().print(f"wrote {res['output']}: {res['masks']} mask pair(s) on a {res['grid']} token grid",
                            highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="surprise", help="Score per-window surprise of videos (and possible/impossible pairs).",
                epilog=SURPRISE_EXAMPLES)(surprise)
    app.command(name="viz", help="Colour patch features by their first 3 principal components.",
                epilog=VIZ_EXAMPLES)(viz)
    app.command(name="viz-masks", help="Draw the masks a recipe asks the model to predict.",
                epilog=MASKS_EXAMPLES)(viz_masks)
