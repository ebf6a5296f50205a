"""Streaming sliding windows over a whole video (for `vjepa extract`): memory stays flat for hour-long
videos because only the frames of the windows still open are kept.

With PyAV the file is decoded once, front to back, converting only the sampled frames to RGB; with decord
each window is one `get_batch` call (decord decodes on demand, so memory is flat too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vjepa_cli.data.sampling import resolve_frame_step, window_indices, window_starts
from vjepa_cli.data.video import PyAVReader, VideoReadError, open_video
from vjepa_cli.errors import VjepaError


def iter_windows(
    path: str | Path,
    frames: int,
    frame_step: int | None = None,
    fps: float | None = None,
    stride: int | None = None,
    backend: str = "auto",
    threads: int = 1,
    include_tail: bool = True,
) -> Iterator[tuple[np.ndarray, float, float]]:
    """Yield `(clip uint8 [T, H, W, 3], start_sec, end_sec)` for every window of a video, in order.

    Args:
        path: the video.
        frames: T, frames per window.
        frame_step / fps: sampling (at most one; neither: every 4th frame, as `resolve_frame_step`).
        stride: source frames between window starts (default: one window span, no overlap).
        backend: "auto" and "pyav" stream with PyAV (one sequential decode); "decord" seeks per window.
        threads: decoder threads.
        include_tail: add a last window ending at the final frame when the grid leaves frames uncovered.
            A video shorter than one window gives one window padded with its last frame.

    Times are `first_index / fps` and `(last_index + 1) / fps` of the source frames used.
    Raises `VjepaError` when the video cannot be opened or decoded.
    """
    try:
        reader = open_video(path, "pyav" if backend == "auto" else backend, threads)
    except VideoReadError as e:
        raise VjepaError(f"cannot read video {e.path}: {e.reason}") from None
    try:
        info = reader.info
        step = resolve_frame_step(info.fps, frames, frame_step, fps)
        span = (frames - 1) * step + 1
        stride = stride or frames * step
        if stride < 1:
            raise VjepaError("window stride must be >= 1")
        windows = [window_indices(s, frames, step, info.num_frames)
                   for s in window_starts(info.num_frames, span, stride, include_tail)]
        stream = _stream_pyav(reader, windows) if isinstance(reader, PyAVReader) else (
            (w, reader.get_batch(w)) for w in windows)
        for idx, clip in stream:
            yield clip, idx[0] / info.fps, (idx[-1] + 1) / info.fps
    except VideoReadError as e:
        raise VjepaError(f"cannot decode video {e.path}: {e.reason}") from None
    finally:
        reader.close()


def _stream_pyav(reader: PyAVReader, windows: list[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One forward decode; keep a frame only while a pending window needs it."""
    need: dict[int, int] = {}  # frame index -> number of pending windows using it
    for w in windows:
        for i in set(w.tolist()):
            need[i] = need.get(i, 0) + 1
    kept: dict[int, np.ndarray] = {}
    nxt = 0  # next window to emit
    last = None
    for fi, frame in reader.iter_frames(0):
        if fi in need:
            kept[fi] = frame.to_ndarray(format="rgb24")
        last = fi
        while nxt < len(windows) and windows[nxt][-1] <= fi:
            yield windows[nxt], _take(kept, windows[nxt])
            for i in set(windows[nxt].tolist()):
                need[i] -= 1
                if not need[i]:
                    kept.pop(i, None)
            nxt += 1
        if nxt == len(windows):
            return
    if last is None:
        raise VideoReadError(reader.path, "no decodable frames")
    # the container announced more frames than it holds: pad the rest with the last decoded frame
    for w in windows[nxt:]:
        w = np.minimum(w, last)
        yield w, _take(kept, w)


def _take(kept: dict[int, np.ndarray], idx: np.ndarray) -> np.ndarray:
    avail = sorted(kept)
    out = []
    for i in idx.tolist():
        if i not in kept:  # a frame missing from the stream: use the nearest earlier one
            earlier = [k for k in avail if k <= i] or avail[:1]
            if not earlier:
                raise VjepaError("a window has no decoded frames")
            i = earlier[-1]
        out.append(kept[i])
    return np.stack(out)
