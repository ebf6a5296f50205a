"""Planner settings: the cross-entropy method over action sequences (`vjepa_cli.plan.cem`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method settings. `low`/`high` give the action dimension A and its bounds.

    The bounds may be left empty where the caller fills them in (a world model plans within the action
    bounds recorded with its episodes, see `WMPlanConfig.cem_for`); `cem_plan` needs them set.
    """

    low: tuple[float, ...] = ()  # per-dimension lower action bound (samples are clipped to it); () = unset
    high: tuple[float, ...] = ()  # per-dimension upper action bound; () = unset
    horizon: int = 3  # actions per planned sequence
    samples: int = 128  # sequences sampled per iteration
    topk: int = 16  # elites kept per iteration
    iterations: int = 5  # CEM iterations
    momentum_mean: float = 0.1  # weight of the old mean in the update (0 = jump to the elite mean)
    momentum_std: float = 0.1  # weight of the old std in the update
    init_std: tuple[float, ...] | None = None  # initial std per dimension (None = half the bound range)
    min_std: float = 1e-3  # floor on the std, as a fraction of the bound range (keeps exploring)
    energy: Literal["final", "sum"] = "final"  # L1 on the last predicted frame, or summed over the horizon
    include_mean: bool = True  # evaluate the current mean as one of the samples each iteration
    chunk: int = 0  # roll out at most this many samples at once (0 = all in one batch)

    def __post_init__(self):
        if len(self.low) != len(self.high):
            raise ValueError("low and high must be of equal length")
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("every low bound must be < its high bound")
        if self.init_std is not None and (min(self.init_std, default=0) <= 0
                                          or (self.low and len(self.init_std) != len(self.low))):
            raise ValueError("init_std needs one positive value per action dimension")
        for name in ("horizon", "samples", "topk", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.topk > self.samples:
            raise ValueError("topk must be <= samples")
        for name in ("momentum_mean", "momentum_std"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        if self.min_std < 0 or self.chunk < 0:
            raise ValueError("min_std and chunk must be >= 0")

    @property
    def action_dim(self) -> int:
        return len(self.low)
