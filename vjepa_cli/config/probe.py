"""Frozen evaluation with attentive probes: task data, probe head, optimiser grid (V-JEPA / V-JEPA 2 protocol).

Defaults follow the V-JEPA 2 probe recipe (`configs/eval/vitl/ssv2.yaml`): 16 frames x 2 segments x 3 views,
frame step 4, 20 epochs, 20 heads (lr in {5e-3, 3e-3, 1e-3, 3e-4, 1e-4} x wd in {0.01, 0.1, 0.4, 0.8}),
cosine lr to 0, constant wd, no warmup, grad clip 1.0; the reported number is the best head.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

from vjepa_cli.config._load import builtin_recipes, load_recipe
from vjepa_cli.errors import VjepaError

# The task names a recipe and `vjepa probe --task` accept. Each has exactly one loader in
# `vjepa_cli.eval.probe.tasks.registry` (a test checks that the two agree).
TASKS = ("ssv2", "k400", "k600", "k700", "diving48", "in1k", "manifest", "synth-motion", "synth-shapes")


DENSE = ("synth-seg",)  # per-token tasks (see `vjepa_cli.eval.probe.dense`), scored by mIoU


def unknown_task(task: str) -> str | None:
    """None for a task in TASKS, else one line that names the closest task and every valid one."""
    if task in TASKS or task in DENSE:
        return None
    close = difflib.get_close_matches(task, (*TASKS, *DENSE), n=1)
    return f"unknown task '{task}' (" + (f"did you mean '{close[0]}'? " if close else "") + "valid: " + ", ".join((*TASKS, *DENSE)) + ")"


@dataclass(frozen=True)
class ProbeDataConfig:
    """Which clips the probe sees: sampling, views, resolution, subsets."""

    frames: int = 16  # frames per clip
    frame_step: int = 4  # source frames between two sampled frames
    segments: int = 2  # temporal segments per video (their tokens are concatenated)
    views: int = 3  # spatial views at evaluation (prediction = mean of the views' softmax)
    resolution: int = 256  # crop side, pixels
    train_scale: tuple[float, float] = (0.3, 1.0)  # RandomResizedCrop area range for training clips
    max_train: int | None = None  # use at most this many training videos (None: all)
    max_val: int | None = None  # use at most this many validation videos (None: all)
    synth_train: int = 2000  # synth tasks: videos generated for training
    synth_val: int = 500  # synth tasks: videos generated for validation
    backend: Literal["auto", "decord", "pyav", "torchcodec"] = "auto"  # video decoder

    def __post_init__(self):
        for name in ("frames", "frame_step", "segments", "views", "resolution", "synth_train", "synth_val"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        lo, hi = self.train_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError("train_scale must satisfy 0 < min <= max <= 1")
        for name in ("max_train", "max_val"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or null")


@dataclass(frozen=True)
class ProbeHeadConfig:
    """The probe head and which encoder layers it reads."""

    kind: Literal["attentive", "attentive-v2", "linear"] = "attentive-v2"  # V-JEPA 1 / V-JEPA 2 pooler, or linear on mean-pooled tokens
    depth: int = 4  # attentive: blocks in the pooler (V-JEPA 1: 1; V-JEPA 2: 4 = 3 self-attention + 1 cross)
    num_heads: int = 16  # attentive: attention heads (must divide the feature width)
    layers: tuple[int, ...] = ()  # encoder blocks to read, 1-based, negatives from the end; several are concatenated along the width (empty: the last, normalised)
    levels: tuple[int, ...] | Literal["all"] = ()  # V-JEPA 2.1 multi-level probe: levels (0-based) or "all", each with its own norm, concatenated along the width

    def __post_init__(self):
        if self.depth < 1:
            raise ValueError("depth must be >= 1")
        if self.num_heads < 1:
            raise ValueError("num_heads must be >= 1")
        if any(v == 0 for v in self.layers):
            raise ValueError("layers are 1-based (use -1 for the last block)")
        if self.levels != "all" and any(v < 0 for v in self.levels):
            raise ValueError("levels are 0-based level numbers (0 = the shallowest) or 'all'")
        if self.levels != () and self.layers:
            raise ValueError("give layers (blocks) or levels (V-JEPA 2.1 levels), not both")


@dataclass(frozen=True)
class ProbeOptimConfig:
    """The grid of heads trained together (one per lr x wd pair) and their schedule."""

    epochs: int = 20  # passes over the training videos
    batch_size: int = 32  # clips per step
    lrs: tuple[float, ...] = (5e-3, 3e-3, 1e-3, 3e-4, 1e-4)  # peak learning rates of the grid
    wds: tuple[float, ...] = (0.01, 0.1, 0.4, 0.8)  # weight decays of the grid
    warmup_epochs: float = 0.0  # linear warmup from 0 before the cosine decay
    final_lr: float = 0.0  # lr at the end of the cosine
    wd_schedule: Literal["constant", "cosine"] = "constant"  # V-JEPA 2: constant; V-JEPA 1: cosine to final_wd
    final_wd: float = 1e-6  # wd at the end when wd_schedule is cosine
    grad_clip: float = 1.0  # max grad norm per head (0: off)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not self.lrs or not self.wds:
            raise ValueError("lrs and wds need at least one value each")
        if any(v <= 0 for v in self.lrs) or any(v < 0 for v in self.wds):
            raise ValueError("lrs must be > 0 and wds >= 0")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs:
            raise ValueError("warmup_epochs must be in [0, epochs)")
        if self.grad_clip < 0:
            raise ValueError("grad_clip must be >= 0")

    @property
    def grid(self) -> list[tuple[float, float]]:
        """(lr, wd) of every head, lr-major."""
        return [(lr, wd) for lr in self.lrs for wd in self.wds]


@dataclass(frozen=True)
class ProbeConfig:
    """`vjepa probe`: a task, its data protocol, the probe head and the optimiser grid."""

    task: str = "synth-motion"  # one of TASKS
    data: ProbeDataConfig = field(default_factory=ProbeDataConfig)  # clip sampling and views
    probe: ProbeHeadConfig = field(default_factory=ProbeHeadConfig)  # head architecture and layers
    optim: ProbeOptimConfig = field(default_factory=ProbeOptimConfig)  # grid and schedule
    cache: bool = True  # encode every clip once and train the heads from the cached features
    cache_clips_per_video: int = 4  # cache: augmented training clips encoded per video (epochs cycle through them)
    batch_encode: int = 8  # clips per encoder forward
    seed: int = 0  # seeds clip sampling, augmentation and head init
    num_workers: int = 0  # decoding worker processes (0: in the main process)
    log_with: tuple[str, ...] = ()  # experiment trackers for the per-epoch curves: tensorboard, wandb, mlflow, aim

    def __post_init__(self):
        problem = unknown_task(self.task)
        if problem:
            raise ValueError(problem)
        if self.cache_clips_per_video < 1 or self.batch_encode < 1 or self.num_workers < 0:
            raise ValueError("cache_clips_per_video and batch_encode must be >= 1, num_workers >= 0")


def load_probe_config(task: str, recipe: str | None = None, sets: list[str] | tuple[str, ...] = ()) -> ProbeConfig:
    """The probe config of `task`: `recipe` (default: the built-in `probe/<task>` when there is one) with `task`
    and the `--set` overrides applied. An unknown task is one clear `VjepaError` naming the valid ones."""
    problem = unknown_task(task)
    if problem:
        raise VjepaError(problem)
    if recipe is None and f"probe/{task}" in builtin_recipes():
        recipe = f"probe/{task}"
    return load_recipe(ProbeConfig, recipe, [f"task={task}", *sets])
