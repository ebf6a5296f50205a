"""`vjepa preprocess`: probe videos in parallel into a manifest + labels.json, optionally re-encoding them
at a smaller size with a short keyframe interval (decoding a clip costs about the frames from the
preceding keyframe to its last index, so a 1 s GOP makes random clip access several times cheaper).

Re-encoding is idempotent and resumable: each output is written under a temporary name and renamed, and
outputs that already exist and decode are kept.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from vjepa_cli.data.manifest import ManifestRow, read_labels, write_labels, write_manifest
from vjepa_cli.data.media import VideoInfo, VideoReadError, check_backend, probe_video, reencode
from vjepa_cli.data.sources import Source, read_source
from vjepa_cli.errors import VjepaError


@dataclass
class PreprocessResult:
    """What `run_preprocess` did."""

    manifest: Path
    labels_path: Path | None
    kind: str  # the SRC kind that was detected
    num_videos: int  # rows written
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of excluded videos
    reencoded: int = 0  # videos encoded in this run
    reused: int = 0  # re-encoded outputs already present from an earlier run


def _work(job: tuple) -> tuple[int, VideoInfo | None, str | None, str | None, str]:
    """Probe (and re-encode) one video: (i, info, reason, final path, status new|reused|probed)."""
    i, path, dst, short, keyint, crf, backend = job
    try:
        info = probe_video(path, backend)
        if dst is None:
            return i, info, None, path, "probed"
        if Path(dst).exists():
            try:
                return i, probe_video(dst, backend), None, dst, "reused"
            except VideoReadError:
                pass  # a broken earlier output: encode again
        reencode(path, dst, short, keyint, crf)
        return i, probe_video(dst, backend), None, dst, "new"
    except VideoReadError as e:
        return i, None, e.reason, path, "failed"
    except Exception as e:  # a re-encoding failure of one file must not stop the others
        return i, None, f"re-encoding failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}", path, "failed"


def _out_path(path: str, root: Path | None, out_dir: Path) -> Path:
    p = Path(path)
    try:
        rel = p.relative_to(root) if root is not None else Path(p.name)
    except ValueError:
        rel = Path(p.name)
    return (out_dir / rel).with_suffix(".mp4")


def run_preprocess(
    src: str,
    manifest: str | Path,
    videos: str | Path | None = None,
    labels: str | Path | None = None,
    workers: int = 4,
    strict: bool = False,
    resize_short_side: int | None = None,
    out_dir: str | Path | None = None,
    keyframe_interval: float = 1.0,
    crf: int = 23,
    backend: str = "auto",
    stdin_text: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PreprocessResult:
    """Scan SRC (see `vjepa_cli.data.sources`) into the manifest `manifest` and `labels.json` beside it.

    Unreadable videos are excluded and returned in `failures` (with `strict`, they raise `VjepaError`
    and nothing is written). An existing labels.json beside the manifest is extended, not replaced, so
    train and val manifests share indices. `progress(done, total)` is called as videos finish.
    """
    if (resize_short_side is None) != (out_dir is None):
        raise VjepaError("--resize-short-side and --out-dir go together")
    if resize_short_side is not None and resize_short_side < 2:
        raise VjepaError("--resize-short-side must be >= 2")
    if keyframe_interval <= 0:
        raise VjepaError("--keyframe-interval must be > 0")
    check_backend(backend)
    source = read_source(src, videos, labels, stdin_text)
    manifest = Path(manifest)
    labels_out = manifest.parent / "labels.json"
    names = _label_names(source, labels, labels_out)
    out = Path(out_dir) if out_dir is not None else None
    roots = source.root if source.root is not None else (
        Path(os.path.commonpath([p for p, _ in source.entries])) if source.entries else None)
    jobs = [(i, p, str(_out_path(p, roots, out)) if out else None, resize_short_side, keyframe_interval, crf, backend)
            for i, (p, _) in enumerate(source.entries)]
    rows, failures, counts = _rows(_run_jobs(jobs, workers, progress), source.entries, names)
    if strict and failures:
        p, r = failures[0]
        raise VjepaError(f"{len(failures)} unreadable video(s), e.g. {p}: {r}", "without --strict they are skipped")
    if not rows:
        raise VjepaError(f"none of the {len(jobs)} videos in {src} could be read",
                         f"first failure: {failures[0][0]}: {failures[0][1]}" if failures else None)
    write_manifest(manifest, rows)
    labels_path = write_labels(labels_out, names) if names else None
    return PreprocessResult(manifest, labels_path, source.kind, len(rows), failures, counts["new"], counts["reused"])


def _label_names(source: Source, labels: str | Path | None, labels_out: Path) -> dict[str, int]:
    """Class name -> index: the source's, the given labels file's or the existing labels.json's, extended by
    the source's new names (indices never change, so train and val manifests agree)."""
    names = dict(source.labels or {})
    if not names and labels is not None:
        names = read_labels(labels)
    elif not names and labels_out.exists():
        names = read_labels(labels_out)
    new = sorted({lab for _, lab in source.entries if isinstance(lab, str)} - names.keys())
    start = max(names.values(), default=-1) + 1
    names.update({name: start + k for k, name in enumerate(new)})
    return names


def _run_jobs(jobs: list[tuple], workers: int, progress: Callable[[int, int], None] | None) -> list[tuple]:
    """`_work` on every job (in worker processes when there are several), results in job order."""
    results: list = [None] * len(jobs)
    done = 0
    if workers > 1 and len(jobs) > 1:
        # fresh interpreters, not forks: a fork of a process with running threads (the timeout watchdog, an OpenMP
        # pool) can inherit a held lock, and the pool then waits forever (seen in CI under load)
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
            finished = (fut.result() for fut in as_completed([pool.submit(_work, j) for j in jobs]))
            for r in finished:
                results[r[0]] = r
                done += 1
                if progress:
                    progress(done, len(jobs))
        return results
    for j in jobs:
        results[j[0]] = _work(j)
        done += 1
        if progress:
            progress(done, len(jobs))
    return results


def _rows(results: list[tuple], entries: list, names: dict[str, int]) -> tuple[list[ManifestRow], list, dict]:
    """Manifest rows of the readable videos, (path, reason) of the others, and how many were new / reused."""
    rows, failures, counts = [], [], {"new": 0, "reused": 0}
    for (_i, info, reason, path, status), (src_path, lab) in zip(results, entries, strict=True):
        if info is None:
            failures.append((src_path, reason))
            continue
        counts[status] = counts.get(status, 0) + 1
        label = names[lab] if isinstance(lab, str) else (-1 if lab is None else int(lab))
        rows.append(ManifestRow(str(Path(path).absolute()), label, info.num_frames, round(info.fps, 6),
                                info.width, info.height))
    return rows, failures, counts
