"""`vjepa extract`: frozen-encoder features for every window of every video (V-JEPA, Bardes et al. 2024;
V-JEPA 2, Assran et al. 2025 use the same frozen-feature protocol for their probes).

Videos are decoded front to back by worker threads (PyAV releases the GIL) while the main thread runs the
encoder on batches of windows, batching across video boundaries. Each video's output is written once,
atomically, when its last window is encoded; a video that fails is reported and leaves no file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli import __version__
from vjepa_cli.config.extract import ExtractConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.inputs import VideoJob, collect_videos, plan_outputs
from vjepa_cli.infer.model import (
    check_window,
    load_eval_model,
    model_record,
    normalize_clips,
    require_model_path,
    to_device_uint8,
)
from vjepa_cli.infer.windows import VideoInfo, Window, num_windows, stream_windows
from vjepa_cli.io.tensors import read_metadata, save_tensors
from vjepa_cli.runtime import resolve_device, stable_hash, torch_dtype

log = logging.getLogger(__name__)
FORMAT = "vjepa-features/1"


@dataclass
class VideoResult:
    """How one video went: `status` is ok, skipped or failed (with `error`)."""

    path: str
    output: str
    status: str
    windows: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ExtractResult:
    videos: list[VideoResult] = field(default_factory=list)

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.status == "failed"]

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.videos)


class Listener:
    """Progress callbacks (no-ops here; the CLI draws bars and prints JSON lines)."""

    def videos_planned(self, n: int) -> None: ...
    def video_started(self, job: VideoJob, planned_windows: int) -> None: ...
    def windows_done(self, n: int) -> None: ...
    def video_done(self, result: VideoResult) -> None: ...


# ---------------------------------------------------------------- encoding (consumer side)

@dataclass
class _Acc:
    """Per-video accumulator."""

    job: VideoJob
    t0: float
    info: VideoInfo | None = None
    feats: list[torch.Tensor] = field(default_factory=list)
    times: list[tuple[float, float]] = field(default_factory=list)
    queued: int = 0  # windows waiting in the current batch
    ended: bool = False
    error: str | None = None


@torch.inference_mode()
def encode_windows(encoder: torch.nn.Module, clips: np.ndarray, device: torch.device, dtype: torch.dtype,
                   pool: str) -> torch.Tensor:
    """uint8 clips `(B, T, S, S, 3)` -> `(B, D)` mean-pooled or `(B, N, D)` tokens, float32 on the CPU."""
    x = normalize_clips(to_device_uint8(clips, device), dtype)  # (B, 3, T, S, S)
    z = encoder(x)  # (B, N, D)
    z = z.float().mean(dim=1) if pool == "mean" else z.float()
    return z.cpu()


def output_state(path: Path, settings_id: str) -> str:
    """'absent', 'same' (complete, same settings: skip it) or 'different' (complete, other settings)."""
    if not path.exists():
        return "absent"
    try:
        meta = read_metadata(path)
    except VjepaError:
        return "absent"  # unreadable (cannot be ours: we write atomically): recompute
    return "same" if meta.get("settings_id") == settings_id else "different"


def run_extract(inputs: Iterable[str | Path], output: str | Path, cfg: ExtractConfig, model_path: str | Path | None = None,
                stdin_lines: Iterable[str] | None = None, listener: Listener | None = None,
                model: Any = None) -> ExtractResult:
    """Extract features for every video in `inputs` into `output` (a file for one video, else a folder).

    `model` may be an already loaded model (then `model_path` only names it in the metadata).
    """
    listener = listener or Listener()
    device = resolve_device(cfg.device)
    if model is None:
        model_path = require_model_path(model_path)  # before anything else: the most common mistake
    jobs = plan_outputs(collect_videos(inputs, stdin_lines), Path(output))
    if model is None:
        model = load_eval_model(model_path, device, cfg.dtype)
    model_path = Path(model_path) if model_path is not None else Path("<in-memory model>")
    check_window(model, cfg.window)
    record = model_record(model, model_path)
    img_size = int(getattr(model.config, "img_size", 224))
    short, size = cfg.window.crop_for(img_size)
    settings = {"window": cfg.window.__dict__, "pool": cfg.pool, "dtype": cfg.dtype, "model_id": record["model_id"]}
    settings_id = stable_hash(settings, 16)
    result = ExtractResult()
    listener.videos_planned(len(jobs))

    todo = []
    for job in jobs:
        state = "absent" if cfg.overwrite else output_state(job.output, settings_id)
        if state == "same":
            r = VideoResult(str(job.path), str(job.output), "skipped", windows=_windows_in(job.output))
            result.videos.append(r)
            listener.video_done(r)
        elif state == "different":
            r = VideoResult(str(job.path), str(job.output), "failed",
                            error=f"{job.output} exists and was made with other settings or another model "
                                  "(pass --overwrite to replace it)")
            result.videos.append(r)
            listener.video_done(r)
        else:
            todo.append(job)

    encoder, dtype = model.encoder, torch_dtype(cfg.dtype)
    accs: dict[int, _Acc] = {}
    batch: list[tuple[_Acc, Window]] = []

    def flush() -> None:
        if not batch:
            return
        clips = np.concatenate([w.frames for _, w in batch])  # (sum V, T, S, S, 3)
        z = encode_windows(encoder, clips, device, dtype, cfg.pool)
        i = 0
        for acc, w in batch:
            v = w.frames.shape[0]
            acc.feats.append(z[i:i + v])
            acc.times.append((w.start, w.end))
            acc.queued -= 1
            i += v
        listener.windows_done(len(batch))
        batch.clear()

    def finish(acc: _Acc) -> None:
        r = _finalize(acc, cfg, record, settings_id, short, size)
        result.videos.append(r)
        listener.video_done(r)

    for job, kind, payload in stream_windows(todo, cfg.window, img_size, cfg.workers, queue_size=max(2, cfg.batch_size)):
        if kind == "start":
            accs[job.index] = acc = _Acc(job, time.perf_counter(), info=payload)
            listener.video_started(job, num_windows(payload.num_frames, cfg.window.frames,
                                                    cfg.window.step_for(payload.fps), cfg.window.stride_for(payload.fps)))
        elif kind == "win":
            acc = accs[job.index]
            batch.append((acc, payload))
            acc.queued += 1
            if sum(w.frames.shape[0] for _, w in batch) >= cfg.batch_size:
                flush()
        else:
            acc = accs.setdefault(job.index, _Acc(job, time.perf_counter()))
            acc.ended, acc.error = True, payload
            if payload is not None:  # failed: drop its queued windows
                batch[:] = [(a, w) for a, w in batch if a is not acc]
                acc.queued = 0
        for a in [a for a in accs.values() if a.ended and a.queued == 0]:
            finish(accs.pop(a.job.index))
    flush()
    for a in list(accs.values()):
        finish(a)
    return result


def _finalize(acc: _Acc, cfg: ExtractConfig, record: dict, settings_id: str, short: int, size: int) -> VideoResult:
    job = acc.job
    res = VideoResult(str(job.path), str(job.output), "failed")
    if acc.error is None and not acc.feats:
        acc.error = "no windows decoded"
    if acc.error is not None:
        res.error = acc.error
        return res
    feats = torch.stack(acc.feats)  # (W, V, D) or (W, V, N, D)
    if cfg.window.views == 1:
        feats = feats[:, 0]
    info = acc.info
    wcfg = cfg.window
    meta = {
        "format": FORMAT, "vjepa_version": __version__, "settings_id": settings_id, **record,
        "pool": cfg.pool, "frames": wcfg.frames, "frame_step": wcfg.step_for(info.fps),
        "stride": wcfg.stride_for(info.fps), "resize": short, "crop": size, "views": wcfg.views,
        "dtype": cfg.dtype, "windows": len(acc.feats), "source": str(job.path.resolve()),
        "source_size": info.size_bytes, "source_frames": info.num_frames, "source_fps": info.fps,
        "source_width": info.width, "source_height": info.height,
    }
    try:
        save_tensors(job.output, {"features": feats, "timestamps": torch.tensor(acc.times, dtype=torch.float64)}, meta)
    except OSError as e:
        res.error = f"cannot write {job.output}: {e}"
        return res
    res.status, res.windows, res.seconds = "ok", len(acc.feats), round(time.perf_counter() - acc.t0, 3)
    return res


def _windows_in(path: Path) -> int:
    try:
        return int(read_metadata(path).get("windows", 0))
    except (VjepaError, ValueError):
        return 0

