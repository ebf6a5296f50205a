"""Sliding windows over whole videos for the frozen-model commands, and the threads that decode them.

A window is `frames` sampled frames, one every `step` source frames; window w starts at sampled frame
`w * stride` (the published intuitive-physics protocol slides this way over the sub-sampled video,
Garrido et al. 2025); `extract` adds a last window ending at the final frame so the whole video is covered.
Decoding is one front-to-back pass (`vjepa_cli.data.windows`), so memory stays flat for any length. Each
window is resized (short side) and cropped: one centre crop, or N crops spread along the long side (V-JEPA
frozen-evaluation views). Timestamps assume a constant frame rate: [first index / fps, (last index + 1) / fps).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_cli.config.extract import WindowConfig
from vjepa_cli.errors import VjepaError


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (frames may be an estimate for some containers)."""

    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    size_bytes: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


@dataclass
class Window:
    """One decoded window: uint8 frames `(V, T, S, S, 3)` and its span in seconds."""

    index: int
    frames: np.ndarray  # (V, T, S, S, 3) uint8
    start: float
    end: float


def probe(path: str | Path) -> VideoInfo:
    """Frame count, rate and size of the first video stream; a clear VjepaError if unreadable."""
    import av

    from vjepa_cli.data.video import implausible_frames

    path = Path(path)
    if not path.is_file():
        raise VjepaError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VjepaError(f"{path} has no video stream")
            s = container.streams.video[0]
            if s.codec_context is None:  # a damaged header names no codec FFmpeg has
                raise VjepaError(f"cannot open video {path}: unknown or damaged codec")
            rate = s.average_rate or s.guessed_rate or s.base_rate
            fps = float(rate) if rate else 0.0
            if fps <= 0:
                raise VjepaError(f"{path}: unknown frame rate")
            n = int(s.frames or 0)
            why = implausible_frames(n, s, path.stat().st_size)  # a damaged count would plan billions of windows
            if why:
                raise VjepaError(f"cannot open video {path}: {why}")
            if n <= 0:  # some containers do not store a frame count: estimate from the duration
                dur = float(s.duration * s.time_base) if s.duration else (container.duration or 0) / 1e6
                n = max(1, int(round(dur * fps)))
            return VideoInfo(path, n, fps, int(s.codec_context.width), int(s.codec_context.height),
                             path.stat().st_size)
    except av.FFmpegError as e:
        raise VjepaError(f"cannot open video {path}: {_av_msg(e)}") from None


def _av_msg(e: Exception) -> str:
    return " ".join(str(getattr(e, "strerror", None) or e).split())


def num_windows(num_frames: int, frames: int, step: int, stride: int, tail: bool = True) -> int:
    """Windows in a video of `num_frames` (stride in sampled frames; see `plan_windows`)."""
    return len(plan_windows(num_frames, frames, step, stride, tail))


def plan_windows(num_frames: int, frames: int, step: int, stride: int, tail: bool = True) -> np.ndarray:
    """Source frame indices `(W, frames)` of every window: starts every `stride` sampled frames, plus (with
    `tail`) a last window ending at the final frame; a short video gives one window padded with its last frame."""
    from vjepa_cli.data.sampling import window_indices, window_starts

    span = (frames - 1) * step + 1
    starts = window_starts(num_frames, span, stride * step, include_tail=tail)
    return np.stack([window_indices(s, frames, step, num_frames) for s in starts])


def window_times(indices: np.ndarray, fps: float) -> np.ndarray:
    """`(W, 2)` start/end seconds of windows given their source indices `(W, F)`."""
    return np.stack([indices[:, 0] / fps, (indices.max(axis=1) + 1) / fps], axis=1).astype(np.float64)


def crop_boxes(width: int, height: int, short: int, size: int, views: int) -> tuple[tuple[int, int], list]:
    """Resized (w, h) keeping the aspect ratio with short side `short`, and `views` (x, y) crop corners."""
    if width <= height:
        rw, rh = short, max(short, round(height * short / width))
    else:
        rw, rh = max(short, round(width * short / height)), short
    if views == 1:
        return (rw, rh), [((rw - size) // 2, (rh - size) // 2)]
    offs = np.linspace(0, max(rw, rh) - size, views).round().astype(int).tolist()
    if rw >= rh:
        return (rw, rh), [(o, (rh - size) // 2) for o in offs]
    return (rw, rh), [((rw - size) // 2, o) for o in offs]


def crop_views(clip: np.ndarray, short: int, size: int, views: int) -> np.ndarray:
    """uint8 `(T, H, W, 3)` -> `(V, T, size, size, 3)`: short side resized to `short` (bilinear, antialiased),
    then a centre crop (V = 1) or V crops spread along the long side (V-JEPA frozen-evaluation views)."""
    from vjepa_cli.data.transforms import short_side_resize, to_tchw

    x = short_side_resize(to_tchw(clip), short)  # (T, 3, h, w)
    (rw, rh), boxes = crop_boxes(x.shape[-1], x.shape[-2], short, size, views)
    crops = [x[..., y:y + size, x0:x0 + size] for x0, y in boxes]
    return np.ascontiguousarray(np.stack([c.permute(0, 2, 3, 1).numpy() for c in crops]))


def iter_windows(path: str | Path, cfg: WindowConfig, model_img_size: int, info: VideoInfo | None = None,
                 tail: bool = True) -> Iterator[Window]:
    """Decode `path` once, front to back (`vjepa_cli.data.windows`), yielding each window resized and cropped
    as soon as its last frame is decoded, so memory does not grow with the video's length."""
    from vjepa_cli.data.windows import iter_windows as stream

    info = info or probe(path)
    step, stride = cfg.step_for(info.fps), cfg.stride_for(info.fps)
    short, size = cfg.crop_for(model_img_size)
    for w, (clip, start, end) in enumerate(stream(path, cfg.frames, frame_step=step, stride=stride * step,
                                                  backend="pyav", include_tail=tail)):
        yield Window(w, crop_views(clip, short, size, cfg.views), float(start), float(end))


def _produce(job: Any, wcfg: WindowConfig, img_size: int, q: queue.Queue, stop: threading.Event, tail: bool) -> None:
    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    import torch

    torch.set_num_threads(1)  # per-thread (OpenMP): resizing here must not take the encoder's cores
    try:
        info = probe(job.path)
        if not put(("start", info)):
            return
        for w in iter_windows(job.path, wcfg, img_size, info, tail):
            if not put(("win", w)):
                return
        put(("end", None))
    except VjepaError as e:
        put(("end", str(e)))
    except Exception as e:  # a decoder crash on one file must not stop the others
        put(("end", f"{type(e).__name__}: {e}"))


def stream_windows(jobs: list[Any], wcfg: WindowConfig, img_size: int, workers: int,
                   queue_size: int = 8, tail: bool = True) -> Iterator[tuple[Any, str, Any]]:
    """Yield `(job, kind, payload)` in video order: ("start", VideoInfo), ("win", Window)..., ("end", error|None).

    With `workers` >= 1, that many videos are decoded ahead in threads, each into a bounded queue.
    """
    if workers == 0:
        for job in jobs:
            yield from _inline(job, wcfg, img_size, tail)
        return
    stop = threading.Event()
    queues: dict[int, queue.Queue] = {}
    threads: list[threading.Thread] = []

    def launch(i: int) -> None:
        if i < len(jobs):
            queues[i] = queue.Queue(maxsize=queue_size)
            t = threading.Thread(target=_produce, args=(jobs[i], wcfg, img_size, queues[i], stop, tail), daemon=True)
            t.start()
            threads.append(t)

    try:
        for i in range(min(workers, len(jobs))):
            launch(i)
        for i, job in enumerate(jobs):
            q = queues.pop(i)
            while True:
                kind, payload = q.get()
                yield job, kind, payload
                if kind == "end":
                    break
            launch(i + workers)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)


def _inline(job: Any, wcfg: WindowConfig, img_size: int, tail: bool) -> Iterator[tuple[Any, str, Any]]:
    try:
        info = probe(job.path)
        yield job, "start", info
        for w in iter_windows(job.path, wcfg, img_size, info, tail):
            yield job, "win", w
    except VjepaError as e:
        yield job, "end", str(e)
        return
    except Exception as e:
        yield job, "end", f"{type(e).__name__}: {e}"
        return
    yield job, "end", None


def batched_windows(jobs: list[Any], wcfg: WindowConfig, img_size: int, workers: int,
                    batch_size: int, tail: bool = False) -> Iterator[tuple[str, Any, Any]]:
    """Per-video batches: ("start", job, VideoInfo), ("batch", job, [Window, ...])..., ("end", job, error|None).

    Batches never mix videos (for commands that keep per-video state, e.g. surprise curves). No tail window by
    default: sliding windows stop where the regular grid ends, as in the published surprise protocol.
    """
    pending: list[Window] = []
    for job, kind, payload in stream_windows(jobs, wcfg, img_size, workers, max(2, batch_size), tail):
        if kind == "win":
            pending.append(payload)
            if len(pending) >= batch_size:
                yield "batch", job, pending
                pending = []
            continue
        if kind == "end":
            if pending and payload is None:
                yield "batch", job, pending
            pending = []
        yield kind, job, payload
