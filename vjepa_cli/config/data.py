"""Video data configuration: which manifests (or built-in synthetic videos), how clips are sampled and
augmented, and how they are decoded. Sampling follows the official V-JEPA / V-JEPA 2 loaders
(Bardes et al. 2024, arXiv:2404.08471; Assran et al. 2025, arXiv:2506.09985).

Example recipe section::

    data:
      datasets: [k400/train.csv, ssv2/train.csv]   # manifests (or {path: ..., weight: ...} mappings)
      weights: [0.6, 0.4]
      frames_per_clip: 16
      frame_step: 4          # or fps: 4, or duration: 4.0 (exactly one; frame_step 4 when none)
      crop_size: 224

    data:
      synth: {task: motion, videos: 512, frames: 16, size: 64, seed: 0}   # generated on first use
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SYNTH_TASKS = ("motion", "shapes", "physics")


@dataclass(frozen=True)
class SynthSpec:
    """Built-in synthetic videos (`vjepa synth`), generated into a cache folder on first use."""

    task: Literal["motion", "shapes", "physics"] = "motion"  # what the label means (see `vjepa synth --help`)
    videos: int = 512  # number of videos (train + val)
    frames: int = 16  # frames per video
    size: int = 64  # frame height = width, pixels (even)
    fps: int = 8  # frame rate written in the files
    seed: int = 0  # same seed -> identical files
    val_fraction: float = 0.2  # share of the videos listed in val.csv
    impossible: bool = False  # physics: matched possible/impossible pairs, label 0 = possible, 1 = impossible
    directions: int = 8  # motion: number of directions (classes = directions x speeds)
    speeds: int = 2  # motion: number of speeds
    distractors: int = 1  # motion: smaller objects moving in other directions (0 makes the task easier)
    split: Literal["train", "val"] = "train"  # which list a dataset built from this spec reads

    def __post_init__(self):
        if self.videos < 2:
            raise ValueError("videos must be >= 2")
        if self.frames < 2:
            raise ValueError("frames must be >= 2")
        if self.size < 16 or self.size % 2:
            raise ValueError("size must be an even number >= 16")
        if self.fps < 1:
            raise ValueError("fps must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.directions < 2 or self.speeds < 1 or self.distractors < 0:
            raise ValueError("need directions >= 2, speeds >= 1, distractors >= 0")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: a manifest path or a synth spec, with its sampling weight."""

    path: str | None = None  # manifest (our CSV or official `path label` lines)
    synth: SynthSpec | None = None  # or built-in synthetic videos
    weight: float = 1.0  # relative sampling weight (V-JEPA 2 mixing: w_d / n_d per sample)

    def __post_init__(self):
        if (self.path is None) == (self.synth is None):
            raise ValueError("a dataset needs exactly one of 'path' or 'synth'")
        if self.weight <= 0:
            raise ValueError("weight must be > 0")


@dataclass(frozen=True)
class DataConfig:
    """Clip sampling, augmentation and decoding. All randomness comes from (seed, step, index)."""

    datasets: tuple[str | DatasetSpec, ...] = ()  # manifests, or {path|synth, weight} mappings
    synth: SynthSpec | None = None  # shorthand: one more dataset made of synthetic videos
    weights: tuple[float, ...] | None = None  # per-dataset weights (overrides DatasetSpec.weight); None = equal
    cache_dir: str | None = None  # synth cache root (default $VJEPA_CACHE, else ~/.cache/vjepa)
    frames_per_clip: int = 16  # frames in one clip
    frame_step: int | None = None  # source frames between sampled frames (4 when fps/duration unset)
    fps: float | None = None  # or: sample at this rate (step = ceil(video_fps) // fps)
    duration: float | None = None  # or: a clip spans this many seconds
    num_clips: int = 1  # clips per video (the video is split into this many partitions)
    crop_size: int = 224  # output height = width
    random_resize_scale: tuple[float, float] = (0.3, 1.0)  # random resized crop area fraction [min, max]
    random_resize_aspect_ratio: tuple[float, float] = (0.75, 1.35)  # random resized crop w/h [min, max]
    horizontal_flip: bool = True  # training flip with p = 0.5 (on, as in the official recipes)
    eval_views: int = 1  # evaluation: 1 = short-side resize + centre crop; N = N crops along the long side
    video_backend: Literal["decord", "pyav", "torchcodec", "auto"] = "auto"  # auto: decord, PyAV when decord fails
    decode_threads: int = 1  # decoder threads per worker (the official -1 also means one thread)
    pad_short: bool = True  # videos shorter than a clip: repeat the last frame (False: skip them)
    max_retries: int = 10  # replacement samples tried for a bad video before giving up
    num_workers: int = 2  # DataLoader worker processes
    pin_memory: bool = True  # pin batches when training on CUDA

    def __post_init__(self):
        given = [k for k in ("frame_step", "fps", "duration") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of frame_step, fps, duration (got {', '.join(given)}); "
                             "set the others to null")
        if self.frame_step is not None and self.frame_step < 1:
            raise ValueError("frame_step must be >= 1")
        if (self.fps is not None and self.fps <= 0) or (self.duration is not None and self.duration <= 0):
            raise ValueError("fps and duration must be > 0")
        if self.frames_per_clip < 1 or self.num_clips < 1 or self.eval_views < 1:
            raise ValueError("frames_per_clip, num_clips and eval_views must be >= 1")
        if self.crop_size < 8:
            raise ValueError("crop_size must be >= 8")
        lo, hi = self.random_resize_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError("random_resize_scale must satisfy 0 < min <= max <= 1")
        lo, hi = self.random_resize_aspect_ratio
        if not 0 < lo <= hi:
            raise ValueError("random_resize_aspect_ratio must satisfy 0 < min <= max")
        if self.max_retries < 0 or self.num_workers < 0 or self.decode_threads < 0:
            raise ValueError("max_retries, num_workers and decode_threads must be >= 0")
        n = len(self.datasets) + (self.synth is not None)
        if self.weights is not None:
            if len(self.weights) != n:
                raise ValueError(f"weights has {len(self.weights)} entries for {n} datasets")
            if any(w <= 0 for w in self.weights):
                raise ValueError("weights must be > 0")

    def dataset_specs(self) -> list[DatasetSpec]:
        """Every dataset as a `DatasetSpec` (strings become paths; `synth` comes last), weights applied."""
        specs = [d if isinstance(d, DatasetSpec) else DatasetSpec(path=d) for d in self.datasets]
        if self.synth is not None:
            specs.append(DatasetSpec(synth=self.synth))
        if self.weights is not None:
            specs = [DatasetSpec(path=s.path, synth=s.synth, weight=w) for s, w in zip(specs, self.weights, strict=True)]
        return specs
