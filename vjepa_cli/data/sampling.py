"""Which frames make a clip: the official V-JEPA / V-JEPA 2 formulas (`src/datasets/video_dataset.py`).

A video of `n` frames is split into `num_clips` equal partitions. A clip spans `clip_len = fpc * fstp`
source frames; its `fpc` indices are `linspace(end - clip_len, end, fpc)` clipped to `end - 1`, where
`end = clip_len` (evaluation) or `end ~ U{clip_len, partition_len - 1}` (training). Partitions shorter
than a clip are padded by repeating their last frame. With `allow_clip_overlap` (evaluation) clip `i` of a
short video starts at `i * (n - clip_len) // (num_clips - 1)`.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FRAME_STEP = 4


def resolve_frame_step(
    video_fps: float | None,
    frames_per_clip: int,
    frame_step: int | None = None,
    fps: float | None = None,
    duration: float | None = None,
) -> int:
    """Source frames between two sampled frames, as V-JEPA 2 computes it.

    Exactly one of `frame_step`, `fps`, `duration` may be given (none: 4). With `fps`, the step is
    `ceil(video_fps) // fps` (7 for 30-fps video at fps=4); with `duration`,
    `int(duration * ceil(video_fps) / frames_per_clip)`. Never less than 1.
    """
    if sum(x is not None for x in (frame_step, fps, duration)) > 1:
        raise ValueError("give only one of frame_step, fps, duration")
    if fps is None and duration is None:
        return int(frame_step) if frame_step is not None else DEFAULT_FRAME_STEP
    vfps = math.ceil(video_fps) if video_fps and video_fps > 0 else 30  # unknown rate: assume 30
    step = int(vfps // fps) if fps is not None else int(duration * vfps / frames_per_clip)
    return max(1, step)


def clip_indices(
    num_frames: int,
    frames_per_clip: int,
    frame_step: int,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
    allow_clip_overlap: bool = False,
) -> list[np.ndarray]:
    """Frame indices of each clip, `num_clips` arrays of `frames_per_clip` int64 indices in [0, num_frames).

    Args:
        num_frames: frames in the video (>= 1).
        frames_per_clip: indices per clip (fpc).
        frame_step: source frames between samples (fstp).
        num_clips: partitions of the video, one clip each.
        rng: training: random clip end per partition drawn with `rng.integers(clip_len, partition_len)`;
            None: the clip sits at the start of its partition (evaluation).
        allow_clip_overlap: evaluation of short videos: spread clips over the whole video.
    """
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    fpc, fstp = frames_per_clip, frame_step
    clip_len = fpc * fstp
    partition_len = num_frames // num_clips
    clips = []
    for i in range(num_clips):
        if partition_len > clip_len:
            end = clip_len if rng is None else int(rng.integers(clip_len, partition_len))
            start = end - clip_len
            idx = np.linspace(start, end, num=fpc)
            idx = np.clip(idx, start, end - 1).astype(np.int64) + i * partition_len
        elif not allow_clip_overlap:
            n = partition_len // fstp
            idx = np.concatenate([np.linspace(0, partition_len, num=n), np.full(fpc - n, float(partition_len))])
            idx = np.clip(idx, 0, partition_len - 1).astype(np.int64) + i * partition_len
        else:
            sample_len = min(clip_len, num_frames) - 1
            n = sample_len // fstp
            idx = np.concatenate([np.linspace(0, sample_len, num=n), np.full(fpc - n, float(sample_len))])
            idx = np.clip(idx, 0, max(sample_len - 1, 0)).astype(np.int64)
            step = (num_frames - clip_len) // (num_clips - 1) if num_frames > clip_len else 0
            idx = idx + i * step
        clips.append(np.clip(idx, 0, num_frames - 1))  # only bites when num_frames < num_clips
    return clips


def window_starts(num_frames: int, span: int, stride: int, include_tail: bool = True) -> list[int]:
    """Start frames of sliding windows covering `span` source frames every `stride` frames.

    A video shorter than one window gives one window at 0 (to be padded); with `include_tail` a last
    window ending at the final frame is added when the regular grid leaves frames uncovered.
    """
    if num_frames <= span:
        return [0]
    starts = list(range(0, num_frames - span + 1, stride))
    if include_tail and starts[-1] + span < num_frames:
        starts.append(num_frames - span)
    return starts


def window_indices(start: int, frames: int, frame_step: int, num_frames: int) -> np.ndarray:
    """Indices `start + k * frame_step` (k < frames), padded with the last frame past the video's end."""
    idx = start + np.arange(frames, dtype=np.int64) * frame_step
    return np.minimum(idx, num_frames - 1)
