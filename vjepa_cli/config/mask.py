"""Masking strategies for pretraining (multi-block 3D, random tube, causal future)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class BlockMaskConfig:
    """One multi-block generator (official defaults: generator A; B has 2 blocks at 0.7)."""

    num_blocks: int = 8  # blocks placed per sample
    spatial_scale: tuple[float, float] = (0.15, 0.15)  # block area as a fraction of the frame, [min, max]
    temporal_scale: tuple[float, float] = (1.0, 1.0)  # block length as a fraction of the clip, [min, max]
    aspect_ratio: tuple[float, float] = (0.75, 1.5)  # block h/w, [min, max]
    max_temporal_keep: float = 1.0  # time steps after this fraction are always targets
    max_keep: int | None = None  # cap on context tokens

    def __post_init__(self):
        if self.num_blocks < 1:
            raise ValueError("num_blocks must be >= 1")
        for name in ("spatial_scale", "temporal_scale", "aspect_ratio"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must satisfy 0 < min <= max")
        if self.spatial_scale[1] > 1 or self.temporal_scale[1] > 1:
            raise ValueError("spatial_scale and temporal_scale must be <= 1")
        if not 0 < self.max_temporal_keep <= 1:
            raise ValueError("max_temporal_keep must be in (0, 1]")


def _official_blocks() -> tuple[BlockMaskConfig, ...]:
    return (BlockMaskConfig(), BlockMaskConfig(num_blocks=2, spatial_scale=(0.7, 0.7)))


@dataclass(frozen=True)
class MaskConfig:
    """Which masks the collator draws for each clip; one (context, target) pair per generator."""

    kind: Literal["multiblock", "tube", "future", "mixed"] = "multiblock"  # mixed = multiblock gens + one future gen
    blocks: tuple[BlockMaskConfig, ...] = field(default_factory=_official_blocks)  # multiblock generators
    tube_ratio: float = 0.9  # tube: fraction of spatial positions masked in every frame
    future_context: float = 0.5  # future: fraction of time steps given as context (the rest are targets)

    def __post_init__(self):
        if self.kind in ("multiblock", "mixed") and not self.blocks:
            raise ValueError("multiblock masking needs at least one entry in blocks")
        if not 0 < self.tube_ratio < 1:
            raise ValueError("tube_ratio must be in (0, 1)")
        if not 0 < self.future_context < 1:
            raise ValueError("future_context must be in (0, 1)")

    @property
    def num_masks(self) -> int:
        """How many (context, target) mask pairs each batch carries."""
        if self.kind == "multiblock":
            return len(self.blocks)
        if self.kind == "mixed":
            return len(self.blocks) + 1
        return 1
