"""What a container's header says before any frame is decoded: sizes, and frame counts that cannot be true.

A damaged header must be caught here, before decord reads the file: decord aborts the whole process on some
(see `implausible_frames`). Also the one-line reason for a decoder exception.
"""

from __future__ import annotations

import functools
from pathlib import Path

from vjepa_cli.data.media.logs import import_av


def short_reason(e: BaseException) -> str:
    """One line about a decoder exception: FFmpeg's own words, without PyAV's "[Errno N] ... 'path'"."""
    text = getattr(e, "strerror", None) or str(e)
    msg = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return msg[:160]


def implausible_frames(n: int, stream, size_bytes: int) -> str | None:
    """Why a container's frame count `n` cannot be true (None when it can). One flipped byte in an mp4's
    `stts` box turned 24 frames into 1.7 billion: decord then aborts the whole process (std::bad_alloc,
    uncatchable) building its frame index, and window planning runs out of memory. A real stream has at least
    one byte per frame and about duration x frame rate frames (`base_rate` is FFmpeg's guess from the
    timestamps, not derived from the count)."""
    if n <= 0:
        return None  # unknown: the readers count packets instead
    if n > size_bytes:
        return f"damaged header: it claims {n} frames in a file of {size_bytes} bytes"
    rate = float(stream.base_rate or stream.guessed_rate or 0)
    seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    if rate > 0 and seconds > 0 and n > 2 * seconds * rate + 16:
        return f"damaged header: it claims {n} frames in {seconds:.3g} s at {rate:.3g} fps"
    return None


@functools.lru_cache(maxsize=8192)
def header_verdict(path: str, size: int, mtime_ns: int) -> str | None:
    """`implausible_frames` of a file, once per version of it: training opens the same videos again and again,
    and a PyAV open costs about as much as decoding a small clip."""
    try:
        with import_av().open(path) as c:
            s = c.streams.video[0] if c.streams.video else None
            return implausible_frames(int(s.frames or 0), s, size) if s is not None else None
    except Exception:  # noqa: BLE001 - the check is advisory; decord reports unreadable files itself
        return None


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the container header via PyAV; (0, 0) if unavailable."""
    try:
        with import_av().open(str(path)) as c:
            cc = c.streams.video[0].codec_context
            return int(cc.width), int(cc.height)
    except Exception:  # any failure: the caller decodes a frame instead
        return 0, 0
