"""A third video backend: torchcodec, PyTorch's own decoder (`video_backend: torchcodec`).

torchcodec decodes with the system's FFmpeg libraries (4 to 8) and must match the installed torch build; where
it cannot load (no FFmpeg libraries, a CUDA wheel on a CPU torch), choosing it is one clear error that says so,
and `auto` never picks it. Frames come as uint8 NHWC tensors and are handed over as numpy arrays without a copy.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from vjepa_cli.data.media.header import short_reason
from vjepa_cli.data.media.readers import VideoInfo, VideoReadError, check_file
from vjepa_cli.errors import VjepaError


def import_torchcodec() -> ModuleType:
    """`torchcodec.decoders`, or a VjepaError saying why it is unusable here."""
    try:
        import torchcodec.decoders as decoders
    except ImportError:
        raise VjepaError("video backend 'torchcodec' is not installed",
                         "pip install torchcodec, which needs FFmpeg's shared libraries; or use pyav or decord") from None
    except (RuntimeError, OSError) as e:  # installed, but its libraries do not load
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VjepaError(f"video backend 'torchcodec' cannot load: {first[:160]}",
                         "it needs FFmpeg 4-8 shared libraries and a torchcodec built for this torch; "
                         "or use pyav or decord") from None
    return decoders


class TorchCodecReader:
    """torchcodec `VideoDecoder` in exact seek mode (frame-accurate, from a scan of the file on open)."""

    name = "torchcodec"

    def __init__(self, path: str | Path, threads: int = 1, size_bytes: int | None = None):
        decoders = import_torchcodec()
        self.path = Path(path)
        self.size_bytes = check_file(self.path) if size_bytes is None else size_bytes
        try:
            self._dec = decoders.VideoDecoder(str(self.path), dimension_order="NHWC", num_ffmpeg_threads=threads,
                                              seek_mode="exact")
            md = self._dec.metadata
            n = len(self._dec)
        except Exception as e:  # torchcodec raises RuntimeError / ValueError with FFmpeg's text
            raise VideoReadError(self.path, f"cannot open with torchcodec: {short_reason(e)}") from None
        if n < 1:
            raise VideoReadError(self.path, "no video frames")
        self.num_frames = int(n)
        self.fps = float(md.average_fps or 0.0) or 30.0
        self.info = VideoInfo(self.num_frames, self.fps, int(md.width or 0), int(md.height or 0), self.path,
                              self.size_bytes)

    def get_batch(self, indices) -> np.ndarray:
        """uint8 [T, H, W, 3] for the given frame indices (any order, repeats allowed)."""
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < self.num_frames]
        if bad:
            raise VideoReadError(self.path, f"cannot decode frame {bad[0]} (the video has {self.num_frames})")
        try:
            data = self._dec.get_frames_at(indices=idx).data  # (T, H, W, 3) uint8
        except Exception as e:
            raise VideoReadError(self.path, f"cannot decode: {short_reason(e)}") from None
        return data.numpy()

    def close(self) -> None:
        self._dec = None
