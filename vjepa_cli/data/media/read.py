"""One-call reads: a video's info (probe), some of its frames, all of them, or a still image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vjepa_cli.data.media.logs import import_av
from vjepa_cli.data.media.readers import VideoInfo, VideoReadError, check_file, open_video, short_reason


def probe_video(path: str | Path, backend: str = "auto", check_decode: bool = True, threads: int = 1) -> VideoInfo:
    """Frames, fps, size (pixels and bytes) of one video; with `check_decode`, also decode its first and last
    frames (catches truncated files). Raises `VideoReadError` (a `VjepaError`) naming the file and the reason."""
    reader = open_video(path, backend, threads)
    try:
        info = reader.info
        if check_decode:
            reader.get_batch([0, info.num_frames - 1])
        return info
    finally:
        reader.close()


def read_frames(path: str | Path, indices, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """Decode the given frames of one video: uint8 [T, H, W, 3]. Raises `VideoReadError`."""
    reader = open_video(path, backend, threads)
    try:
        return reader.get_batch(indices)
    finally:
        reader.close()


def _decode_all(path: Path, kind: str, limit: int | None = None) -> list[np.ndarray]:
    """Frames of the first video stream of any file FFmpeg reads, as uint8 [H, W, 3] RGB (at most `limit`)."""
    av = import_av()
    check_file(path, kind)
    frames = []
    try:
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if limit is not None and len(frames) >= limit:
                    break
    except (av.error.FFmpegError, ValueError, IndexError) as e:  # IndexError: no video stream
        raise VideoReadError(path, f"cannot decode {kind}: {short_reason(e)}", kind) from None
    if not frames:
        raise VideoReadError(path, "no frames", kind)
    return frames


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video as uint8 [T, H, W, 3] RGB. Raises `VideoReadError`."""
    return np.stack(_decode_all(Path(path), "video"))


def read_image(path: str | Path) -> np.ndarray:
    """An image file (PNG, JPEG: anything FFmpeg decodes) as uint8 [H, W, 3] RGB; grey is expanded and alpha
    dropped. Raises `VideoReadError` (a `VjepaError`) for a missing or undecodable file."""
    return _decode_all(Path(path), "image", limit=1)[0]
