"""`vjepa extract`: frozen-encoder features for every window of every video or image (V-JEPA, Bardes et al.
2024; V-JEPA 2, Assran et al. 2025 use the same frozen-feature protocol for their probes).

An image is one window of one frame: a V-JEPA 2.1 encoder reads it through its image embedder, others repeat it
to one tubelet. With `levels` (2.1 models) the chosen levels of the hierarchical output are concatenated along
the width. Every file records the token grid (T', H', W') so `--pool none` features `[W, N, D]` reshape to
`[W, T', H', W', D]`.

Videos are decoded front to back, by worker threads (PyAV releases the GIL) while the main thread runs the
encoder, or (the CPU's default) in the main thread between forwards with every core (`decode_workers`). Windows
are batched across video boundaries; on the CPU a batch runs as forwards of about `CPU_FORWARD_TOKENS`. Each
video's output is written once, atomically, when its last window is encoded; a video that fails is reported and
leaves no file.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli import __version__
from vjepa_cli.config.extract import ExtractConfig
from vjepa_cli.data.media import Window
from vjepa_cli.data.transforms import normalize_clips
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.inputs import VideoJob, collect_videos, is_image, plan_outputs
from vjepa_cli.infer.model import (
    check_window,
    load_eval_model,
    model_record,
    require_model_path,
    to_device_uint8,
)
from vjepa_cli.infer.windows import (
    VideoEnded,
    VideoStarted,
    VideoWindows,
    WindowDecoded,
    decode_workers,
    stream_windows,
)
from vjepa_cli.io.tensors import read_metadata, save_tensors
from vjepa_cli.models.levels import encode_levels, level_blocks, resolve_levels
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
    videos: list[VideoResult] = field(default_factory=list)  # in input order
    combined: str | None = None  # the --combined file, when written

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


@dataclass(frozen=True)
class RunSettings:
    """What every output of one run records: the model, the crop, and the id of the settings."""

    record: dict[str, Any]  # model path, fingerprint and config (`model_record`)
    settings_id: str  # hash of window, pool, levels, dtype and model: an output with another id is not ours to skip
    img_size: int  # the model's native input size
    short: int  # short side after the resize
    size: int  # crop side
    levels: tuple[int, ...] = ()  # resolved 2.1 levels (0-based); () = the default output
    blocks: tuple[int, ...] = ()  # the encoder blocks those levels are read after

    @classmethod
    def of(cls, model: Any, model_path: Path, cfg: ExtractConfig) -> RunSettings:
        record = model_record(model, model_path)
        img_size = int(getattr(model.config, "img_size", 224))
        short, size = cfg.window.crop_for(img_size)
        levels = resolve_levels(model.encoder, cfg.levels)
        settings = {"window": cfg.window.__dict__, "pool": cfg.pool, "dtype": cfg.dtype, "model_id": record["model_id"]}
        if levels:  # only then: outputs made before levels existed keep their id (and are skipped, not redone)
            settings["levels"] = list(levels)
        blocks = tuple(level_blocks(model.encoder, levels))
        return cls(record, stable_hash(settings, 16), img_size, short, size, levels, blocks)


@dataclass
class _Video:
    """One video being extracted: its windows' features as they are encoded."""

    job: VideoJob
    t0: float
    video: VideoWindows | None = None  # None when it failed before opening
    feats: list[torch.Tensor] = field(default_factory=list)  # (V, D) or (V, N, D) per window
    grid: tuple[int, int, int] | None = None  # token grid (T', H', W') of its windows
    times: list[tuple[float, float]] = field(default_factory=list)
    queued: int = 0  # windows waiting in the current batch
    ended: bool = False
    error: str | None = None


# On the CPU, clips go through the encoder in groups of about this many tokens: a batch of eight 16x224 clips
# (12544 tokens) ran 9 % slower per clip than one clip at a time (its MLP activations, 77 MB, leave the caches).
CPU_FORWARD_TOKENS = 2048


@torch.inference_mode()
def encode_windows(encoder: torch.nn.Module, clips: np.ndarray, device: torch.device, dtype: torch.dtype,
                   pool: str, levels: tuple[int, ...] = ()) -> torch.Tensor:
    """uint8 clips `(B, T, S, S, 3)` (T = 1: images) -> `(B, D')` mean-pooled or `(B, N, D')` tokens, float32 on
    the CPU; D' = D, or len(levels) * D with 2.1 `levels` (0-based, concatenated in the order given)."""
    group = len(clips)
    if device.type == "cpu":
        group = max(1, CPU_FORWARD_TOKENS // math.prod(clip_grid(encoder, clips[:1])))
    out = []
    for i in range(0, len(clips), group):
        x = normalize_clips(to_device_uint8(clips[i:i + group], device), dtype=dtype, channels_last=True)
        z = encode_levels(encoder, x, levels)  # (b, N, D'); x (b, 3, T, S, S)
        out.append((z.float().mean(dim=1) if pool == "mean" else z.float()).cpu())
    return torch.cat(out) if len(out) > 1 else out[0]


def clip_grid(encoder: torch.nn.Module, clips: np.ndarray) -> tuple[int, int, int]:
    """Token grid (T', H', W') the encoder makes of uint8 clips `(B, T, H, W, 3)`."""
    _, t, h, w, _ = clips.shape
    return tuple(int(v) for v in encoder.token_grid(torch.empty(1, 3, t, h, w, device="meta")))


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
                model: Any = None, combined: str | Path | None = None) -> ExtractResult:
    """Extract features for every video in `inputs` into `output` (a file for one video, else a folder).

    `model` may be an already loaded model (then `model_path` only names it in the metadata). `combined`: also
    write every video's features into this one file (see `vjepa_cli.infer.combine`), when no video failed.
    """
    listener = listener or Listener()
    device = resolve_device(cfg.device)
    if model is None:
        model_path = require_model_path(model_path)  # before anything else: the most common mistake
    jobs = plan_outputs(collect_videos(inputs, stdin_lines, images=True), Path(output))
    if model is None:
        model = load_eval_model(model_path, device, cfg.dtype)
    model_path = Path(model_path) if model_path is not None else Path("<in-memory model>")
    check_window(model, cfg.window)
    run = RunSettings.of(model, model_path, cfg)
    result = ExtractResult()
    listener.videos_planned(len(jobs))
    todo = [job for job in jobs if not _done_before(job, cfg, run.settings_id, result, listener)]
    if cfg.jobs > 1 and len(todo) > 1:
        from vjepa_cli.infer.extract_jobs import extract_in_processes

        extract_in_processes(todo, cfg.jobs, cfg, run, model, model_path, device, listener, result)
    else:
        _Extractor(model.encoder, device, cfg, run, listener, result).extract(todo)
    order = {str(job.path): job.index for job in jobs}
    result.videos.sort(key=lambda r: order.get(r.path, len(order)))  # input order, whatever finished first
    if combined is not None and not result.failed:
        from vjepa_cli.infer.combine import combine_run

        result.combined = combine_run(combined, inputs, [(r.path, r.output) for r in result.videos])
    return result


def _done_before(job: VideoJob, cfg: ExtractConfig, settings_id: str, result: ExtractResult,
                 listener: Listener) -> bool:
    """Whether `job.output` already exists (skipped, or refused when made with other settings)."""
    state = "absent" if cfg.overwrite else output_state(job.output, settings_id)
    if state == "absent":
        return False
    if state == "same":
        r = VideoResult(str(job.path), str(job.output), "skipped", windows=_windows_in(job.output))
    else:
        r = VideoResult(str(job.path), str(job.output), "failed",
                        error=f"{job.output} exists and was made with other settings or another model "
                              "(pass --overwrite to replace it)")
    result.videos.append(r)
    listener.video_done(r)
    return True


class _Extractor:
    """The consumer side: batches windows across videos, runs the encoder, and writes each video's file as
    soon as its last window is encoded (a failed video drops its queued windows and writes nothing)."""

    def __init__(self, encoder: torch.nn.Module, device: torch.device, cfg: ExtractConfig, run: RunSettings,
                 listener: Listener, result: ExtractResult):
        self.encoder, self.device, self.dtype = encoder, device, torch_dtype(cfg.dtype)
        self.cfg, self.run, self.listener, self.result = cfg, run, listener, result
        self.videos: dict[int, _Video] = {}  # by job index, in start order
        self.batch: list[tuple[_Video, Window]] = []

    def extract(self, jobs: list[VideoJob]) -> None:
        cfg = self.cfg
        for ev in stream_windows(jobs, cfg.window, self.run.img_size, decode_workers(cfg.workers, self.device),
                                 queue_size=max(2, cfg.batch_size)):
            match ev:
                case VideoStarted(job, video):
                    self.videos[job.index] = _Video(job, time.perf_counter(), video)
                    self.listener.video_started(job, video.num_windows)
                case WindowDecoded(job, window):
                    self._add(self.videos[job.index], window)
                case VideoEnded(job, error):
                    self._end(job, error)
            for v in [v for v in self.videos.values() if v.ended and v.queued == 0]:
                self._finish(self.videos.pop(v.job.index))
        self._flush()
        for v in list(self.videos.values()):
            self._finish(v)

    def _add(self, v: _Video, window: Window) -> None:
        if self.batch and self.batch[0][1].frames.shape[1:] != window.frames.shape[1:]:
            self._flush()  # images (T = 1) and video windows are encoded in separate batches
        self.batch.append((v, window))
        v.queued += 1
        if sum(w.frames.shape[0] for _, w in self.batch) >= self.cfg.batch_size:
            self._flush()

    def _end(self, job: VideoJob, error: str | None) -> None:
        v = self.videos.setdefault(job.index, _Video(job, time.perf_counter()))
        v.ended, v.error = True, error
        if error is not None:  # failed: drop its queued windows
            self.batch[:] = [(a, w) for a, w in self.batch if a is not v]
            v.queued = 0

    def _flush(self) -> None:
        if not self.batch:
            return
        clips = np.concatenate([w.frames for _, w in self.batch])  # (sum V, T, S, S, 3)
        z = encode_windows(self.encoder, clips, self.device, self.dtype, self.cfg.pool, self.run.levels)
        grid = clip_grid(self.encoder, clips)
        i = 0
        for v, w in self.batch:
            n = w.frames.shape[0]  # views
            v.grid = grid
            v.feats.append(z[i:i + n])
            v.times.append((w.start, w.end))
            v.queued -= 1
            i += n
        self.listener.windows_done(len(self.batch))
        self.batch.clear()

    def _finish(self, v: _Video) -> None:
        r = _write_output(v, self.cfg, self.run)
        self.result.videos.append(r)
        self.listener.video_done(r)


def _write_output(v: _Video, cfg: ExtractConfig, run: RunSettings) -> VideoResult:
    """Save one video's features and timestamps atomically (nothing when it failed)."""
    job = v.job
    res = VideoResult(str(job.path), str(job.output), "failed")
    if v.error is None and not v.feats:
        v.error = "no windows decoded"
    if v.error is not None:
        res.error = v.error
        return res
    feats = torch.stack(v.feats)  # (W, V, D) or (W, V, N, D)
    if cfg.window.views == 1:
        feats = feats[:, 0]
    info, wcfg, image = v.video.info, cfg.window, is_image(job.path)
    meta = {
        "format": FORMAT, "vjepa_version": __version__, "settings_id": run.settings_id, **run.record,
        "pool": cfg.pool, "frames": 1 if image else wcfg.frames, "frame_step": v.video.step,
        "stride": v.video.stride, "resize": run.short, "crop": run.size, "views": wcfg.views,
        "dtype": cfg.dtype, "windows": len(v.feats), "source": str(job.path.resolve()),
        "source_size": info.size_bytes, "source_frames": info.num_frames, "source_fps": info.fps,
        "source_width": info.width, "source_height": info.height,
        "source_kind": "image" if image else "video", "grid": list(v.grid), "tokens": math.prod(v.grid),
    }
    if run.levels:  # how to split the width: level k of the model is block level_blocks[i], D = level_dim
        meta.update(levels=list(run.levels), level_blocks=list(run.blocks),
                    level_dim=feats.shape[-1] // len(run.levels))
    try:
        save_tensors(job.output, {"features": feats, "timestamps": torch.tensor(v.times, dtype=torch.float64)}, meta)
    except OSError as e:
        res.error = f"cannot write {job.output}: {e}"
        return res
    res.status, res.windows, res.seconds = "ok", len(v.feats), round(time.perf_counter() - v.t0, 3)
    return res


def _windows_in(path: Path) -> int:
    try:
        return int(read_metadata(path).get("windows", 0))
    except (VjepaError, ValueError):
        return 0
