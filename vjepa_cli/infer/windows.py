"""Windows of many videos for the frozen-model commands, decoded ahead by threads, as a stream of typed events.

Each video is opened once (`vjepa_cli.data.media`): the reader's `VideoInfo` gives the frame rate, from which
the window settings resolve the frame step and stride once (`VideoWindows`); the same reader then streams the
windows front to back, resized and cropped, so memory stays flat for any length. Per video the stream is
`VideoStarted`, `WindowDecoded`..., `VideoEnded` (with the error when the video failed), in input order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_cli.config.extract import WindowConfig
from vjepa_cli.data.media import (
    Crop,
    VideoInfo,
    Window,
    crop_views,
    open_video,
    plan_windows,
    read_image,
    read_windows,
)
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.inputs import is_image


@dataclass(frozen=True)
class VideoWindows:
    """An opened video and how it is cut: settings resolved once from its frame rate."""

    info: VideoInfo
    step: int  # source frames between sampled frames
    stride: int  # sampled frames between window starts
    indices: np.ndarray  # (W, T) source frame indices of every window

    @property
    def num_windows(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class VideoStarted:
    job: Any
    video: VideoWindows


@dataclass(frozen=True)
class WindowDecoded:
    job: Any
    window: Window  # frames (V, T, S, S, 3) uint8


@dataclass(frozen=True)
class WindowBatch:
    job: Any
    windows: list[Window]  # consecutive windows of one video


@dataclass(frozen=True)
class VideoEnded:
    job: Any
    error: str | None = None  # None: every window was delivered


Event = VideoStarted | WindowDecoded | VideoEnded


def image_window(path: Path, wcfg: WindowConfig, img_size: int) -> tuple[VideoWindows, Window]:
    """A still image as a one-window, one-frame video: frames (V, 1, S, S, 3), resized and cropped as windows
    are, timestamps (0, 0). Raises `VideoReadError`."""
    img = read_image(path)  # (H, W, 3)
    info = VideoInfo(1, 0.0, img.shape[1], img.shape[0], Path(path), Path(path).stat().st_size)
    frames = crop_views(img[None], *Crop(*wcfg.crop_for(img_size), wcfg.views))  # (V, 1, S, S, 3)
    return VideoWindows(info, 1, 1, np.zeros((1, 1), np.int64)), Window(frames, 0.0, 0.0)


def video_events(job: Any, wcfg: WindowConfig, img_size: int, tail: bool = True,
                 threads: int = 1) -> Iterator[Event]:
    """Open `job.path` once and yield its events; a failure ends the video with its one-line error. A still
    image (by extension) is one window of one frame. `threads`: the decoder's threads."""
    reader = None
    try:
        if is_image(job.path):
            video, window = image_window(job.path, wcfg, img_size)
            yield VideoStarted(job, video)
            yield WindowDecoded(job, window)
            yield VideoEnded(job)
            return
        reader = open_video(job.path, "pyav", threads)  # one sequential decode of the whole file
        info = reader.info
        step, stride = wcfg.step_for(info.fps), wcfg.stride_for(info.fps)
        video = VideoWindows(info, step, stride, plan_windows(info.num_frames, wcfg.frames, step, stride, tail))
        yield VideoStarted(job, video)
        for w in read_windows(reader, video.indices, Crop(*wcfg.crop_for(img_size), wcfg.views)):
            yield WindowDecoded(job, w)
    except VjepaError as e:
        yield VideoEnded(job, str(e))
        return
    except Exception as e:  # a decoder crash on one file must not stop the others
        yield VideoEnded(job, f"{type(e).__name__}: {e}")
        return
    finally:
        if reader is not None:
            reader.close()
    yield VideoEnded(job)


class _Prefetch:
    """Videos decoded ahead by `workers` threads, each into a bounded queue of its own.

    A thread that finishes a video takes the next one at once (not when the consumer has read the first), so
    the decoders never wait on the model across video boundaries; at most `workers + 1` videos are open and
    unread at a time, each holding at most `queue_size` windows, so memory stays bounded."""

    def __init__(self, jobs: list[Any], wcfg: WindowConfig, img_size: int, workers: int, queue_size: int,
                 tail: bool):
        self.jobs, self.wcfg, self.img_size = jobs, wcfg, img_size
        self.queue_size, self.tail = queue_size, tail
        self.stop = threading.Event()
        self.slots = threading.Semaphore(workers + 1)  # videos taken by a thread and not yet read to the end
        self.ready = threading.Condition()
        self.queues: dict[int, queue.Queue] = {}
        self.taken = 0  # jobs handed to a thread so far (in input order)
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(min(workers, len(jobs)))]
        for t in self.threads:
            t.start()

    def _work(self) -> None:
        import torch

        torch.set_num_threads(1)  # per-thread (OpenMP): resizing here must not take the encoder's cores
        while not self.stop.is_set():
            if not self.slots.acquire(timeout=0.1):
                continue
            with self.ready:
                i = self.taken
                if i >= len(self.jobs):
                    self.slots.release()
                    return
                self.taken += 1
                self.queues[i] = q = queue.Queue(maxsize=self.queue_size)
                self.ready.notify_all()
            self._produce(self.jobs[i], q)

    def _produce(self, job: Any, q: queue.Queue) -> None:
        with closing(video_events(job, self.wcfg, self.img_size, self.tail)) as events:
            for ev in events:
                while not self.stop.is_set():
                    try:
                        q.put(ev, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                else:
                    return  # the consumer has gone

    def events(self, i: int) -> Iterator[Event]:
        """Video i's events (videos are read in input order)."""
        with self.ready:
            self.ready.wait_for(lambda: i in self.queues)
            q = self.queues.pop(i)
        while True:
            ev = q.get()
            yield ev
            if isinstance(ev, VideoEnded):
                break
        self.slots.release()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


MAX_DECODE_THREADS = 8  # FFmpeg frame threads hold a frame each in flight; more than this gains little


def decode_workers(workers: int | None, device: Any) -> int:
    """`workers` as given, or by default 0 on the CPU and 1 on an accelerator.

    On the CPU a decoding thread beside the model takes cores the model was using: on 2 cores (ViT-S 16x224,
    30 windows of six 720p clips) the model ran 25 % slower beside it, and decoding between forwards with every
    core was 5 % faster end to end. On a GPU the thread keeps the GPU fed while the CPU decodes."""
    if workers is not None:
        return workers
    return 0 if getattr(device, "type", str(device)) == "cpu" else 1


def stream_windows(jobs: list[Any], wcfg: WindowConfig, img_size: int, workers: int,
                   queue_size: int = 8, tail: bool = True) -> Iterator[Event]:
    """Every video's events, in video order. `workers` >= 1: that many videos decoded ahead in threads (one
    decoder thread each) while the caller runs the model; 0: decoded in the calling thread between forwards, by
    as many decoder threads as torch has (at most MAX_DECODE_THREADS): decoding and the model take turns with
    every core."""
    if workers == 0:
        import torch

        threads = min(torch.get_num_threads(), MAX_DECODE_THREADS)
        for job in jobs:
            yield from video_events(job, wcfg, img_size, tail, threads=threads)
        return
    with closing(_Prefetch(jobs, wcfg, img_size, workers, queue_size, tail)) as prefetch:
        for i in range(len(jobs)):
            yield from prefetch.events(i)


def batched_windows(jobs: list[Any], wcfg: WindowConfig, img_size: int, workers: int,
                    batch_size: int, tail: bool = False) -> Iterator[VideoStarted | WindowBatch | VideoEnded]:
    """Per video: `VideoStarted`, `WindowBatch` (up to `batch_size` windows)..., `VideoEnded`.

    Batches never mix videos (for commands that keep per-video state, e.g. surprise curves), and a failed
    video's last partial batch is dropped. No tail window by default: sliding windows stop where the regular
    grid ends, as in the published surprise protocol.
    """
    pending: list[Window] = []
    for ev in stream_windows(jobs, wcfg, img_size, workers, max(2, batch_size), tail):
        if isinstance(ev, WindowDecoded):
            pending.append(ev.window)
            if len(pending) >= batch_size:
                yield WindowBatch(ev.job, pending)
                pending = []
            continue
        if isinstance(ev, VideoEnded):
            if pending and ev.error is None:
                yield WindowBatch(ev.job, pending)
            pending = []
        yield ev
