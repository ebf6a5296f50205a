"""Images and videos through PyAV: image read (PNG, JPEG: anything FFmpeg decodes), and lossless RGB
H.264 (`libx264rgb`, crf 0) for episode frames, so decoded frames equal the rendered ones bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import atomic_path


def read_image(path: str | Path) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB; a missing or undecodable file is a VjepaError."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VjepaError(f"image not found: {path}")
    try:
        with av.open(str(path)) as c:
            frame = next(c.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, StopIteration, ValueError) as e:
        raise VjepaError(f"cannot decode image {path}: {e}") from None


def _encode(path: Path, frames: np.ndarray, codec: str, fmt: str | None, fps: float, options: dict) -> None:
    from fractions import Fraction

    import av

    h, w = frames.shape[1:3]
    with atomic_path(path, suffix=path.suffix) as tmp, av.open(str(tmp), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000), options=options)
        s.width, s.height, s.pix_fmt = w, h, "rgb24"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        c.mux(s.encode())


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write an [H, W, 3] uint8 image as PNG, atomically (the shared zlib writer)."""
    from vjepa_cli.io.png import write_png as _write_png

    return _write_png(path, np.ascontiguousarray(img, dtype=np.uint8))


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write [T, H, W, 3] uint8 frames as lossless RGB H.264 (.mp4), atomically."""
    path = Path(path)
    _encode(path, frames, "libx264rgb", None, fps, {"crf": "0", "preset": "ultrafast"})
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video as [T, H, W, 3] uint8 RGB."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VjepaError(f"video not found: {path}")
    try:
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    except (av.error.FFmpegError, ValueError) as e:
        raise VjepaError(f"cannot decode video {path}: {e}") from None
    if not frames:
        raise VjepaError(f"video {path} has no frames")
    return np.stack(frames)


def tile(images: list[np.ndarray], cols: int, pad: int = 2) -> np.ndarray:
    """Lay equally sized [H, W, 3] images out on a grid with a white gap."""
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = im
    return out
