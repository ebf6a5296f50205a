"""Which videos a command works on, and where each one's output goes.

INPUT may be a video file, a folder (searched recursively for videos), a manifest (`.csv`/`.txt`:
our CSV with a `path` column, or official `path label` lines), or `-` for paths on stdin, one per line.
Commands that read still images too (`extract`) pass `images=True`: image files are then inputs like videos
and folders are searched for both.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import IMAGE_EXTS, VIDEO_EXTS

MANIFEST_EXTS = {".csv", ".txt", ".tsv", ".lst"}


@dataclass(frozen=True)
class VideoJob:
    """One video and the output file it maps to."""

    index: int
    path: Path
    output: Path


def collect_videos(inputs: Iterable[str | Path], stdin_lines: Iterable[str] | None = None,
                   images: bool = False) -> list[tuple[Path, Path | None]]:
    """Expand INPUTs to `(video, root)` pairs; `root` is the folder a video was found under (else None).
    `images`: folders are searched for still images too."""
    exts = VIDEO_EXTS | IMAGE_EXTS if images else VIDEO_EXTS
    out: list[tuple[Path, Path | None]] = []
    for item in inputs:
        s = str(item)
        if s == "-":
            if stdin_lines is None:
                raise VjepaError("'-' given but no standard input to read paths from")
            out += [(Path(line.strip()), None) for line in stdin_lines if line.strip() and not line.startswith("#")]
            continue
        p = Path(s)
        if p.is_dir():
            vids = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
            if not vids:
                raise VjepaError(f"no videos found in folder {p}", hint=f"looked for {', '.join(sorted(exts))}")
            out += [(v, p) for v in vids]
        elif p.suffix.lower() in MANIFEST_EXTS and p.is_file():
            out += [(v, None) for v in read_paths(p)]
        else:
            out.append((p, None))  # a video (a missing one is reported per video, not fatal)
    if not out:
        raise VjepaError("no input videos", hint="give video files, folders, a manifest, or '-' to read paths from stdin")
    return out


def read_paths(manifest: Path) -> list[Path]:
    """Video paths listed in a manifest (either format; relative paths resolve against its folder)."""
    from vjepa_cli.data.manifest import read_manifest

    return [Path(row.path) for row in read_manifest(manifest)]


def plan_outputs(videos: list[tuple[Path, Path | None]], output: Path, suffix: str = ".safetensors") -> list[VideoJob]:
    """Map videos to output files: one video with `-o x.safetensors` -> that file; otherwise files named after
    the videos under the `-o` folder (sub-folders of a folder input are mirrored; clashing names fall back to
    paths relative to the videos' common folder)."""
    output = Path(output)
    if output.suffix == suffix and not output.is_dir():
        if len(videos) != 1:
            raise VjepaError(f"{len(videos)} videos but -o names one file ({output})", hint="give -o a folder")
        return [VideoJob(0, videos[0][0], output)]
    rel = [v.relative_to(root) if root is not None else Path(v.name) for v, root in videos]
    if len(set(rel)) != len(rel):
        common = Path(os.path.commonpath([str(v.resolve().parent) for v, _ in videos]))
        rel = [v.resolve().relative_to(common) for v, _ in videos]
    if len(set(rel)) != len(rel):
        raise VjepaError("the same video is listed twice", hint="remove duplicates from the inputs")
    return [VideoJob(i, v, output / r.with_suffix(suffix)) for i, ((v, _), r) in enumerate(zip(videos, rel, strict=True))]


def is_image(path: str | Path) -> bool:
    """Whether `path` names a still image (by its extension)."""
    return Path(path).suffix.lower() in IMAGE_EXTS
