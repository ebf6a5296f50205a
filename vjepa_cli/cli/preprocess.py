"""`vjepa preprocess`: scan videos into a manifest CSV + labels.json, optionally re-encoding them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._options import JsonOpt, OldWorkersOpt, either

HELP = (
    "Scan videos into a manifest CSV (path,label,num_frames,fps,width,height) and labels.json. SRC is a "
    "folder (label = sub-folder), a file listing paths (or - for stdin), a manifest (ours or official "
    "'path label'), a Something-Something v2 JSON (with labels.json; --videos holds <id>.webm) or a "
    "Kinetics CSV (--videos holds <youtube_id>_<start>_<end>.mp4). Unreadable videos are listed and left out."
)
EXAMPLES = """Examples:\n\n  vjepa preprocess videos/ -o train.csv -j 8\n
  vjepa preprocess ssv2/train.json --videos ssv2/videos -o ssv2/train.csv\n
  vjepa preprocess k400/train.csv --videos k400/train -o data/k400.csv --resize-short-side 256 --reencode-dir data/k400_256"""


def command(
    src: Annotated[str, typer.Argument(help="Folder, list file, manifest, SSv2 JSON, Kinetics CSV, or - (stdin).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest CSV to write (labels.json goes beside it).")],
    videos: Annotated[Path | None, typer.Option("--videos", help="Folder holding the videos of an SSv2 JSON / Kinetics CSV / list.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Existing labels.json (class name -> index) to use.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Parallel probing/encoding processes "
                                                                         "[default: 4].", show_default=False)] = None,
    workers_old: OldWorkersOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1, nothing written) if any video is unreadable.")] = False,
    resize_short_side: Annotated[int | None, typer.Option("--resize-short-side", help="Re-encode with this short side (needs --reencode-dir).")] = None,
    reencode_dir: Annotated[Path | None, typer.Option("--reencode-dir", help="Folder for re-encoded videos.")] = None,
    out_dir_old: Annotated[Path | None, typer.Option("--out-dir", hidden=True)] = None,
    keyframe_interval: Annotated[float, typer.Option("--keyframe-interval", help="Seconds between keyframes when re-encoding.")] = 1.0,
    crf: Annotated[int, typer.Option("--crf", help="x264 quality when re-encoding (lower = better).")] = 23,
    video_backend: Annotated[Literal["auto", "decord", "pyav", "torchcodec"], typer.Option(
        "--video-backend", help="Video decoder (auto: decord where installed, else PyAV; torchcodec where it loads).")] = "auto",
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.data.preprocess import run_preprocess
    from vjepa_cli.log import console, err_console, progress

    workers = either(jobs, workers_old, "--jobs", "--workers") or 4
    out_dir = either(reencode_dir, out_dir_old, "--reencode-dir", "--out-dir")
    stdin_text = sys.stdin.read() if src == "-" else None
    with progress(transient=True) as bar:
        tid = bar.add_task("probing" if resize_short_side is None else "re-encoding", total=None, info="")
        res = run_preprocess(src, output, videos=videos, labels=labels, workers=workers, strict=strict,
                             resize_short_side=resize_short_side, out_dir=out_dir,
                             keyframe_interval=keyframe_interval, crf=crf, backend=video_backend,
                             stdin_text=stdin_text, progress=lambda d, n: bar.update(tid, completed=d, total=n))
    if json_out:
        typer.echo(json.dumps({"manifest": str(res.manifest), "labels": str(res.labels_path) if res.labels_path else None,
                               "source": res.kind, "videos": res.num_videos, "reencoded": res.reencoded,
                               "reused": res.reused, "failures": [{"path": p, "reason": r} for p, r in res.failures]}))
        return
    for p, r in res.failures:
        err_console().print(f"[yellow]skipped[/] {p}: {r}", highlight=False, soft_wrap=True)
    extra = f", {res.reencoded} re-encoded, {res.reused} already done" if resize_short_side else ""
    console().print(f"wrote {res.manifest}: {res.num_videos} videos ({res.kind}), {len(res.failures)} unreadable "
                    f"skipped{extra}" + (f"; labels: {res.labels_path}" if res.labels_path else ""), highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="preprocess", help=HELP, epilog=EXAMPLES)(command)
