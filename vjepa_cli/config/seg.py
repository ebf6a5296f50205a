"""The dense probe `synth-seg`: a linear per-token head on frozen patch features, scored by mIoU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SegProbeConfig:
    """Data and head of `synth-seg` (built-in shapes clips with per-token object labels)."""

    train: int = 256  # training clips
    val: int = 128  # validation clips (other seeds than the training ones)
    frames: int = 8  # frames per clip (a multiple of the encoder's tubelet)
    size: int = 64  # frame side, pixels (a multiple of the patch)
    classes: Literal["object", "shape"] = "object"  # object: background / shape; shape: background / circle /
    # square / triangle. A token is labelled with the shape when the shape covers most (>= 1/2) of its pixels
    levels: Literal["last", "all"] = "last"  # features: the last level (D), or every 2.1 level concatenated (L*D)
    steps: int = 300  # full-batch AdamW steps of the head
    lr: float = 1.0e-2  # head learning rate
    weight_decay: float = 1.0e-3  # head weight decay
    balanced: bool = True  # cross-entropy weighted by inverse class frequency (mIoU counts every class alike)
    batch_size: int = 32  # clips per encoder forward
    seed: int = 0  # data and head seed

    def __post_init__(self):
        for name in ("train", "val", "frames", "size", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
