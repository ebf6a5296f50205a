"""`vjepa extract`: frozen-encoder features for videos and images (see `vjepa_cli.infer.extract`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._eval_options import (
    BatchOpt,
    FpsOpt,
    FramesOpt,
    FrameStepOpt,
    ResizeOpt,
    SizeOpt,
    StrideOpt,
    ViewsOpt,
    WorkersOpt,
    window_config,
)
from vjepa_cli.cli._options import DeviceOpt, DtypeOpt, JsonOpt, ModelOpt

HELP = "Extract frozen-encoder features from videos and images (one safetensors file per input)."
EXAMPLES = """Examples:\n\n  vjepa extract video.mp4 -o feats.safetensors --model encoder.safetensors\n\n  vjepa extract videos/ -o feats/ --pool none --frames 16 --frame-step 4 --stride 2s\n\n  vjepa extract photos/ -o feats/ --pool none --levels all --model vjepa2_1_vitb.safetensors\n\n  find data -name '*.mp4' | vjepa extract - -o feats/ --json\n\n  vjepa extract videos/ -o feats/ -j 2     # two processes: a CPU's cores busy with decoding and forwards"""


def command(
    inputs: Annotated[list[str], typer.Argument(help="Videos, images, folders, manifests (.csv/.txt), or - for paths on stdin.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (one video) or folder.")],
    model: ModelOpt = None,
    frames: FramesOpt = 16,
    frame_step: FrameStepOpt = None,
    fps: FpsOpt = None,
    stride: StrideOpt = None,
    size: SizeOpt = None,
    resize: ResizeOpt = None,
    views: ViewsOpt = 1,
    pool: Annotated[Literal["mean", "none"], typer.Option("--pool", help="mean: features [W, D]; none: patch tokens [W, N, D] (the grid T',H',W' is in the metadata).")] = "mean",
    levels: Annotated[str | None, typer.Option("--levels", help="V-JEPA 2.1 models: 'all' or levels like 0,3 (0 = shallowest), concatenated along D.")] = None,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    workers: WorkersOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Processes sharing the videos, each with its own copy "
                                      "of the model and, on the CPU, 1/N of the threads (on CUDA one GPU each).")] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Recompute outputs that already exist.")] = False,
    combined: Annotated[Path | None, typer.Option(
        "--combined", help="Also write one .safetensors with every window of every video (features, video_index, "
                           "timestamps, labels from a manifest; paths in the metadata) for numpy / scikit-learn.",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    from rich.markup import escape

    from vjepa_cli.config.extract import ExtractConfig, parse_levels
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.infer.extract import run_extract
    from vjepa_cli.log import err_console, progress

    wcfg = window_config(frames, frame_step, fps, stride, size, resize, views)
    try:
        cfg = ExtractConfig(window=wcfg, pool=pool, levels=parse_levels(levels), batch_size=batch_size, device=device,
                            dtype=dtype, workers=workers, overwrite=overwrite, jobs=jobs)
    except ValueError as e:
        raise VjepaError(f"bad option: {e}") from None
    stdin_lines = sys.stdin if "-" in inputs else None
    with progress() as bar:
        result = run_extract(inputs, output, cfg, model_path=model, stdin_lines=stdin_lines,
                             listener=_Show(bar, json_out), combined=combined)
    ok, skipped, failed = result.count("ok"), result.count("skipped"), result.failed
    summary = f"{ok} extracted, {skipped} skipped (already done), {len(failed)} failed"
    err_console().print(summary, highlight=False, soft_wrap=True)
    if result.combined:
        err_console().print(f"combined: {escape(result.combined)}", highlight=False, soft_wrap=True)
    if failed:
        err_console().print("failed: " + escape(", ".join(f.path for f in failed)), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


class _Show:
    """Progress bars on stderr, and one JSON line per video (--json) or one line per failure
    (`vjepa_cli.infer.extract.Listener`'s callbacks)."""

    def __init__(self, bar, json_out: bool):
        self.bar, self.json_out = bar, json_out
        self.vids = bar.add_task("videos", total=None, info="")
        self.wins = bar.add_task("windows", total=None, info="")

    def videos_planned(self, n):
        self.bar.update(self.vids, total=n)

    def video_started(self, job, planned_windows):
        total = self.bar.tasks[self.wins].total or 0
        self.bar.update(self.wins, total=total + planned_windows, info=job.path.name)

    def windows_done(self, n):
        self.bar.advance(self.wins, n)

    def video_done(self, r):
        from rich.markup import escape

        from vjepa_cli.log import err_console

        self.bar.advance(self.vids, 1)
        if self.json_out:
            sys.stdout.write(json.dumps(r.as_json()) + "\n")
            sys.stdout.flush()
        elif r.status == "failed":
            err_console().print(f"[red]failed[/] {escape(r.path)}: {escape(str(r.error))}", highlight=False,
                                soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(name="extract", help=HELP, epilog=EXAMPLES)(command)
