"""Writing videos (H.264 mp4 through PyAV) and PNG images, atomically and deterministically.

One writer for every video we make: synthetic datasets and re-encoded ones (`yuv420p`, lossy), world-model
episodes (`lossless`: `libx264rgb` at crf 0, so decoded frames equal the rendered ones bit for bit) and
`vjepa viz` pictures. One encoder thread and fixed settings: the same frames give byte-identical files.

x264's macroblock-tree rate control (`mbtree`, on by default) reads uninitialised memory on tiny frames: a
32 x 32 clip encoded after other work had left garbage on the heap came out with different bytes in 4-5 of 20
tries (identical rendered frames), which is why the same synth seed sometimes gave different files inside the
test suite. With `mbtree=0` every try gives the same bytes; the quality cost at crf 18 is negligible here.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vjepa_cli.data.media.logs import import_av
from vjepa_cli.io.atomic import atomic_path


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> uint8 [3H/2, W] planar YUV 4:2:0 (BT.601, limited range), in numpy.

    Done here rather than by FFmpeg's swscale, whose SIMD paths depend on buffer alignment and so can
    round differently from run to run; this keeps encoded files byte-identical.
    """
    # Only element-wise float64 operations (each correctly rounded whatever the SIMD path) and an exact
    # integer 2x2 sum: a float reduction such as .mean() may associate differently with alignment.
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    h, w = r.shape
    s4 = rgb.astype(np.int32).reshape(h // 2, 2, w // 2, 2, 3)
    q = (s4[:, 0, :, 0] + s4[:, 0, :, 1] + s4[:, 1, :, 0] + s4[:, 1, :, 1]).astype(np.float64) / 4  # 2x2 chroma mean
    r2, g2, b2 = q[..., 0], q[..., 1], q[..., 2]
    cb = 128 + (-37.797 * r2 - 74.203 * g2 + 112.0 * b2) / 255
    cr = 128 + (112.0 * r2 - 93.786 * g2 - 18.214 * b2) / 255
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, cb, cr)]
    return np.concatenate([p.ravel() for p in planes]).reshape(h * 3 // 2, w)


class VideoWriter:
    """Stream RGB frames into an mp4 (H.264). Width and height must be even unless `lossless`.

    Args:
        path: output file (written as-is; wrap in `atomic_path` for atomic output).
        width, height: frame size in pixels.
        fps: frame rate (int, float or Fraction).
        crf: x264 quality (lower = better, bigger); ignored when lossless.
        preset: x264 speed preset.
        keyint: frames between keyframes (None: x264 default 250). Short = cheaper random access.
        threads: encoder threads (1 keeps output byte-identical across runs).
        lossless: RGB H.264 (`libx264rgb`, crf 0): decoded frames equal the written ones exactly.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float | Fraction, crf: int = 18,
                 preset: str = "veryfast", keyint: int | None = None, threads: int = 1, lossless: bool = False):
        av = import_av()
        if not lossless and (width % 2 or height % 2):
            raise ValueError("H.264 (yuv420p) needs even width and height")
        rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
        self._c = av.open(str(path), "w", format="mp4")
        opts = {"crf": "0" if lossless else str(crf), "preset": preset, "threads": str(threads),
                "x264-params": "mbtree=0"}
        if keyint:
            opts.update({"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0"})
        self._s = self._c.add_stream("libx264rgb" if lossless else "libx264", rate=rate, options=opts)
        self._s.width, self._s.height = width, height
        self._s.pix_fmt = "rgb24" if lossless else "yuv420p"
        self._s.codec_context.thread_count = threads
        self._av, self._n, self._tb, self._lossless = av, 0, 1 / rate, lossless

    def write(self, frame) -> None:
        """Append one frame: uint8 [H, W, 3] RGB array, or an `av.VideoFrame`."""
        if isinstance(frame, np.ndarray):
            if self._lossless:
                frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            else:
                frame = self._av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
        frame.pts, frame.time_base = self._n, self._tb  # constant frame rate, whatever the source said
        self._n += 1
        for packet in self._s.encode(frame):
            self._c.mux(packet)

    def close(self) -> None:
        if self._c is None:
            return
        for packet in self._s.encode():
            self._c.mux(packet)
        self._c.close()
        self._c = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames: np.ndarray, fps: float, crf: int = 18, keyint: int | None = None,
                preset: str = "veryfast", lossless: bool = False) -> Path:
    """Write uint8 [T, H, W, 3] frames to an mp4 atomically (no half-written file on failure)."""
    with atomic_path(path, suffix=".mp4") as tmp:
        with VideoWriter(tmp, frames.shape[2], frames.shape[1], fps, crf=crf, preset=preset, keyint=keyint,
                         lossless=lossless) as w:
            for f in frames:
                w.write(f)
    return Path(path)


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def reencode(src: str | Path, dst: str | Path, short_side: int, keyframe_interval: float = 1.0,
             crf: int = 23, preset: str = "veryfast") -> None:
    """Re-encode `src` to H.264 mp4 `dst` with its short side at most `short_side` (never upscaled, even
    sizes), the source frame rate, and a keyframe every `keyframe_interval` seconds. Atomic."""
    av = import_av()
    with av.open(str(src)) as inp:
        s = inp.streams.video[0]
        s.thread_type = "AUTO"
        rate = s.average_rate or s.guessed_rate or 30
        w, h = s.codec_context.width, s.codec_context.height
        scale = min(1.0, short_side / min(w, h))
        nw, nh = _even(w * scale), _even(h * scale)
        keyint = max(1, int(round(keyframe_interval * float(rate))))
        with atomic_path(dst, suffix=".mp4") as tmp, VideoWriter(tmp, nw, nh, rate, crf=crf, preset=preset,
                                                                   keyint=keyint) as out:
            for frame in inp.decode(s):
                out.write(frame.reformat(width=nw, height=nh, format="yuv420p", interpolation="AREA"))


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write a uint8 [H, W], [H, W, 3] or [H, W, 4] image as PNG (Pillow), atomically."""
    data = encode_png(img)
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(data)
    return Path(path)


def encode_png(img: np.ndarray) -> bytes:
    """uint8 [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] -> PNG bytes."""
    import io

    from PIL import Image

    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"a PNG is written from uint8 pixels, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"a PNG is written from [H, W], [H, W, 3] or [H, W, 4] pixels, got {img.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
