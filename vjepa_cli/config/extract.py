"""Settings of the frozen-encoder commands (`extract`, `predict`, `surprise`, `viz`): how a video is cut
into windows and how each window is resized and cropped before the encoder sees it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class WindowConfig:
    """Sliding windows over a whole video, and the spatial transform of each window (official eval style)."""

    frames: int = 16  # frames per window (the encoder's clip length)
    frame_step: int | None = None  # take every k-th source frame (None: 4, unless fps is set)
    fps: float | None = None  # or sample at about this rate: step = ceil(video fps) // fps (V-JEPA 2 rule)
    stride: int | None = None  # window stride in sampled frames (None: frames, i.e. back-to-back windows)
    stride_seconds: float | None = None  # or the stride in seconds (exclusive with stride)
    size: int | None = None  # crop side in pixels (None: the model's img_size)
    resize: int | None = None  # short side before the crop (None: size*256/224 for 1 view, size for several)
    views: int = 1  # spatial views: 1 = centre crop; N = N crops spread along the long side

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError("frames must be >= 1")
        if self.frame_step is not None and self.fps is not None:
            raise ValueError("give frame_step or fps, not both")
        if self.frame_step is not None and self.frame_step < 1:
            raise ValueError("frame_step must be >= 1")
        if self.fps is not None and not self.fps > 0:
            raise ValueError("fps must be > 0")
        if self.stride is not None and self.stride_seconds is not None:
            raise ValueError("give stride (frames) or stride_seconds, not both")
        if self.stride is not None and self.stride < 1:
            raise ValueError("stride must be >= 1 frame")
        if self.stride_seconds is not None and not self.stride_seconds > 0:
            raise ValueError("stride_seconds must be > 0")
        if self.size is not None and self.size < 1:
            raise ValueError("size must be >= 1")
        if self.resize is not None and self.size is not None and self.resize < self.size:
            raise ValueError("resize (short side) must be >= size (crop)")
        if self.views < 1:
            raise ValueError("views must be >= 1")

    def step_for(self, video_fps: float) -> int:
        """Source frames between two sampled frames for a video at `video_fps`."""
        if self.frame_step is not None:
            return self.frame_step
        if self.fps is not None:
            return max(1, int(math.ceil(video_fps) // self.fps))
        return 4

    def stride_for(self, video_fps: float) -> int:
        """Window stride in sampled frames for a video at `video_fps`."""
        if self.stride is not None:
            return self.stride
        if self.stride_seconds is not None:
            return max(1, round(self.stride_seconds * video_fps / self.step_for(video_fps)))
        return self.frames

    def crop_for(self, model_img_size: int) -> tuple[int, int]:
        """(short side after resize, crop side) given the model's native size."""
        size = self.size if self.size is not None else model_img_size
        if self.resize is not None:
            return self.resize, size
        return (int(size * 256 / 224) if self.views == 1 else size), size


@dataclass(frozen=True)
class ExtractConfig:
    """`vjepa extract`: windows, pooling and how the model runs."""

    window: WindowConfig = field(default_factory=WindowConfig)  # windowing and crop
    pool: Literal["mean", "none"] = "mean"  # mean over patch tokens ([W, D]) or keep them ([W, N, D])
    levels: tuple[int, ...] | Literal["all"] = ()  # V-JEPA 2.1 levels (0-based) concatenated along D; () = default output
    batch_size: int = 8  # clips per encoder forward (windows of several videos are batched together)
    device: str | None = None  # cpu, cuda, cuda:N (None: cuda when available)
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"  # model and compute precision (features are saved fp32)
    workers: int | None = None  # decoding threads beside the model; 0: between forwards; None: 0 on CPU, 1 on GPU
    overwrite: bool = False  # recompute outputs that already exist
    jobs: int = 1  # processes sharing the videos, each with its own model (`vjepa_cli.infer.extract_jobs`)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.jobs < 1:
            raise ValueError("jobs must be >= 1")
        if self.workers is not None and self.workers < 0:
            raise ValueError("workers must be >= 0")
        if self.pool not in ("mean", "none"):
            raise ValueError("pool must be 'mean' or 'none'")
        if self.levels != "all" and (not isinstance(self.levels, tuple) or any(v < 0 for v in self.levels)):
            raise ValueError("levels must be 'all' or a tuple of level numbers >= 0")
        if self.dtype not in ("fp32", "bf16", "fp16"):
            raise ValueError("dtype must be fp32, bf16 or fp16")


Levels = tuple[int, ...] | Literal["all"]  # () = the default output; "all" = every level of a V-JEPA 2.1 model


def parse_levels(text: str | None) -> Levels:
    """`--levels` text -> levels: None or "" -> (); "all" -> "all"; "0,3" -> (0, 3). Raises VjepaError."""
    from vjepa_cli.errors import VjepaError

    if text is None or not text.strip():
        return ()
    t = text.strip().lower()
    if t == "all":
        return "all"
    try:
        out = tuple(int(p) for p in t.split(","))
    except ValueError:
        raise VjepaError(f"bad --levels {text!r}", hint="give 'all' or level numbers like 0,3") from None
    if len(set(out)) != len(out) or min(out) < 0:
        raise VjepaError(f"bad --levels {text!r}: levels are distinct numbers >= 0", hint="e.g. --levels 0,3")
    return out


def parse_stride(text: str | None) -> tuple[int | None, float | None]:
    """'8' -> (8 sampled frames, None); '2s' or '1.5s' -> (None, seconds). Raises ValueError."""
    if text is None or text == "":
        return None, None
    t = text.strip().lower()
    if t.endswith("s"):
        return None, float(t[:-1])
    return int(t), None


@dataclass(frozen=True)
class SurpriseConfig:
    """`vjepa predict` / `vjepa surprise`: causal future prediction inside each window (intuitive-physics
    protocol, Garrido et al. 2025: 16 frames at step 2, stride 2, context lengths 2, 4, 6, 8, 10 frames)."""

    window: WindowConfig = field(default_factory=lambda: WindowConfig(frame_step=2, stride=2))  # windows
    context_frames: tuple[int, ...] = (2, 4, 6, 8, 10)  # context lengths in frames (multiples of the tubelet)
    combine: Literal["min", "mean"] = "min"  # curve over context lengths: min (the official "filtered") or mean
    mask_index: int = 0  # predictor mask token (0 = the first generator's, as the official evaluation)
    normalize_targets: bool = True  # layer-norm the target features (as in training and the official eval)
    batch_size: int = 8  # windows per forward pass
    device: str | None = None  # cpu, cuda, cuda:N (None: cuda when available)
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"  # compute precision
    workers: int | None = None  # decoding threads (None: 0 on the CPU, 1 on a GPU; see `decode_workers`)

    def __post_init__(self):
        if not self.context_frames or any(c < 1 for c in self.context_frames):
            raise ValueError("context_frames must be a non-empty list of positive frame counts")
        if any(c >= self.window.frames for c in self.context_frames):
            raise ValueError(f"every context length must be below the window's {self.window.frames} frames")
        if self.combine not in ("min", "mean"):
            raise ValueError("combine must be 'min' or 'mean'")
        if self.batch_size < 1 or (self.workers is not None and self.workers < 0) or self.mask_index < 0:
            raise ValueError("batch_size must be >= 1, workers and mask_index >= 0")
        if self.dtype not in ("fp32", "bf16", "fp16"):
            raise ValueError("dtype must be fp32, bf16 or fp16")
