"""Sliding windows over a whole video, streamed: memory stays flat for hour-long videos because only the
frames of the windows still open are kept.

A window is `frames` sampled frames, one every `step` source frames; window w starts at sampled frame
`w * stride` (the published intuitive-physics protocol slides this way over the sub-sampled video,
Garrido et al. 2025); `include_tail` adds a last window ending at the final frame so the whole video is
covered, and a video shorter than one window gives one window padded with its last frame. Each window may be
resized (short side) and cropped: one centre crop, or N crops spread along the long side (V-JEPA
frozen-evaluation views). Timestamps assume a constant frame rate: [first index / fps, (last index + 1) / fps).

With PyAV the file is decoded once, front to back, converting only the sampled frames to RGB; with decord
each window is one `get_batch` call (decord decodes on demand, so memory is flat too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vjepa_cli.data.media.readers import DecordReader, PyAVReader, VideoReadError, open_video, short_reason
from vjepa_cli.data.sampling import resolve_frame_step, window_indices, window_starts
from vjepa_cli.errors import VjepaError


class Crop(NamedTuple):
    """How a window is cut for the encoder: short side resized to `short`, then `views` crops of `size`."""

    short: int
    size: int
    views: int = 1


class Window(NamedTuple):
    """One decoded window: uint8 frames `(T, H, W, 3)`, or `(V, T, S, S, 3)` when cropped, and its span in
    seconds. Unpacks as `clip, start, end`."""

    frames: np.ndarray
    start: float
    end: float


def _plan(num_frames: int, frames: int, step: int, stride_frames: int, tail: bool) -> np.ndarray:
    """Source indices `(W, frames)`; `stride_frames` is in source frames."""
    if stride_frames < 1:
        raise VjepaError("window stride must be >= 1")
    span = (frames - 1) * step + 1
    starts = window_starts(num_frames, span, stride_frames, include_tail=tail)
    return np.stack([window_indices(s, frames, step, num_frames) for s in starts])


def plan_windows(num_frames: int, frames: int, step: int, stride: int, tail: bool = True) -> np.ndarray:
    """Source frame indices `(W, frames)` of every window, `stride` in sampled frames (see the module notes)."""
    return _plan(num_frames, frames, step, stride * step, tail)


def num_windows(num_frames: int, frames: int, step: int, stride: int, tail: bool = True) -> int:
    """Windows in a video of `num_frames` (stride in sampled frames; see `plan_windows`)."""
    return len(plan_windows(num_frames, frames, step, stride, tail))


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


def resize_short(frames: np.ndarray, short: int) -> np.ndarray:
    """uint8 `(T, H, W, 3)` -> `(T, h, w, 3)` with short side `short` (bilinear, antialiased; a view of
    channels-last memory). Each frame is resized on its own, so frames resized one by one as they are decoded
    give the same bytes as the stacked clip."""
    from vjepa_cli.data.transforms import short_side_resize, to_tchw

    return short_side_resize(to_tchw(frames), short).permute(0, 2, 3, 1).numpy()  # (T, h, w, 3)


def cut_views(clip: np.ndarray, short: int, size: int, views: int) -> np.ndarray:
    """Resized uint8 `(T, h, w, 3)` (short side `short`) -> `(V, T, size, size, 3)`, contiguous: the centre
    crop (V = 1) or V crops spread along the long side."""
    _, boxes = crop_boxes(clip.shape[2], clip.shape[1], short, size, views)
    return np.stack([clip[:, y:y + size, x0:x0 + size] for x0, y in boxes])


def crop_views(clip: np.ndarray, short: int, size: int, views: int) -> np.ndarray:
    """uint8 `(T, H, W, 3)` -> `(V, T, size, size, 3)`: short side resized to `short` (bilinear, antialiased),
    then a centre crop (V = 1) or V crops spread along the long side (V-JEPA frozen-evaluation views)."""
    return cut_views(resize_short(clip, short), short, size, views)


def read_windows(reader: DecordReader | PyAVReader, indices: np.ndarray, crop: Crop | None = None) -> Iterator[Window]:
    """The planned windows `indices` `(W, T)` of an open video, in order, each as soon as it is decoded.

    With PyAV and a `crop`, each sampled frame is resized once, as it is decoded (overlapping windows share
    it, and only small frames are kept); the windows are then cut from the resized frames.
    Raises `VideoReadError` when a frame cannot be decoded.
    """
    fps = reader.info.fps
    windows = list(indices)
    if isinstance(reader, PyAVReader):
        def convert(frame) -> np.ndarray:  # av.VideoFrame -> uint8 (H, W, 3), or (h, w, 3) resized
            rgb = frame.to_ndarray(format="rgb24")
            return rgb if crop is None else resize_short(rgb[None], crop.short)[0]

        stream = _stream_pyav(reader, windows, convert)
        cut = None if crop is None else (lambda clip: cut_views(clip, *crop))
    else:
        stream = ((w, reader.get_batch(w)) for w in windows)
        cut = None if crop is None else (lambda clip: crop_views(clip, *crop))
    for idx, clip in stream:
        if cut is not None:
            clip = cut(clip)
        yield Window(clip, float(idx[0] / fps), float((idx[-1] + 1) / fps))


def iter_windows(
    path: str | Path,
    frames: int,
    frame_step: int | None = None,
    fps: float | None = None,
    stride: int | None = None,
    backend: str = "auto",
    threads: int = 1,
    include_tail: bool = True,
    crop: Crop | None = None,
) -> Iterator[Window]:
    """Yield every `Window` of a video, in order (`clip, start, end = window`).

    Args:
        path: the video.
        frames: T, frames per window.
        frame_step / fps: sampling (at most one; neither: every 4th frame, as `resolve_frame_step`).
        stride: source frames between window starts (default: one window span, no overlap).
        backend: "auto" and "pyav" stream with PyAV (one sequential decode); "decord" seeks per window.
        threads: decoder threads.
        include_tail: add a last window ending at the final frame when the grid leaves frames uncovered.
        crop: resize and crop each window (frames `(V, T, S, S, 3)`); None: the decoded frames `(T, H, W, 3)`.

    Raises `VideoReadError` (a `VjepaError`) when the video cannot be opened or decoded.
    """
    reader = open_video(path, "pyav" if backend == "auto" else backend, threads)
    try:
        info = reader.info
        step = resolve_frame_step(info.fps, frames, frame_step, fps)
        indices = _plan(info.num_frames, frames, step, stride or frames * step, include_tail)
        yield from read_windows(reader, indices, crop)
    finally:
        reader.close()


def _stream_pyav(reader: PyAVReader, windows: list[np.ndarray], convert=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One forward decode; keep a frame (as `convert(frame)`, default RGB) only while a pending window needs it."""
    convert = convert or (lambda frame: frame.to_ndarray(format="rgb24"))
    need: dict[int, int] = {}  # frame index -> number of pending windows using it
    for w in windows:
        for i in set(w.tolist()):
            need[i] = need.get(i, 0) + 1
    kept: dict[int, np.ndarray] = {}
    nxt = 0  # next window to emit
    last = None
    try:
        for fi, frame in reader.iter_frames(0):
            if fi in need:
                kept[fi] = convert(frame)
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
    except VjepaError:
        raise
    except Exception as e:  # FFmpeg failing mid-stream
        raise VideoReadError(reader.path, f"cannot decode: {short_reason(e)}") from None
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
