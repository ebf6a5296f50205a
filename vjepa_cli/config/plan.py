"""Planner settings: CEM, MPPI and gradient descent over action sequences (`vjepa_cli.plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Pick = Literal["mean", "best"]  # what a sampling planner returns: the final mean or the best sequence seen


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
    energy: Literal["final", "sum", "min"] = "final"  # on the last predicted frame, summed, or the horizon's lowest
    include_mean: bool = True  # evaluate the current mean as one of the samples each iteration
    keep_elites: int = 0  # best sequences of an iteration scored again in the next (iCEM; 0 = none)
    pick: Pick = "mean"  # the plan: the final mean, or the lowest-energy sequence seen ("best", as iCEM)
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
        _check_keep(self)

    @property
    def action_dim(self) -> int:
        return len(self.low)


def _check_keep(cfg) -> None:
    """keep_elites must leave room for new samples (and for the mean, when it is evaluated)."""
    if not 0 <= cfg.keep_elites <= min(cfg.topk, cfg.samples - 1 - int(cfg.include_mean)):
        raise ValueError("keep_elites must be in [0, topk] and leave at least one new sample per iteration")


def _check_search(cfg) -> None:
    """The checks every planner config shares: bounds, horizon, samples, chunk."""
    if len(cfg.low) != len(cfg.high):
        raise ValueError("low and high must be of equal length")
    if any(lo >= hi for lo, hi in zip(cfg.low, cfg.high, strict=True)):
        raise ValueError("every low bound must be < its high bound")
    for name in ("horizon", "samples", "iterations"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1")
    if cfg.chunk < 0:
        raise ValueError("chunk must be >= 0")


@dataclass(frozen=True)
class MPPIConfig:
    """Model-predictive path integral settings (`vjepa_cli.plan.mppi`); bounds, horizon, energy and chunk mean
    what they mean for CEM. The mean moves to the average of the `topk` best samples weighted by
    exp(-(e - e_min) / (temperature * (e_mean_topk - e_min))): the temperature is relative to the elites'
    energy gap, so one setting works whatever the feature scale."""

    low: tuple[float, ...] = ()  # per-dimension lower action bound; () = unset (filled in from the model)
    high: tuple[float, ...] = ()  # per-dimension upper action bound
    horizon: int = 3  # actions per planned sequence
    samples: int = 128  # sequences sampled per iteration
    topk: int = 16  # samples that get a weight (the rest weigh 0)
    iterations: int = 5  # MPPI iterations
    temperature: float = 0.5  # relative temperature of the exponential weights (-> 0: the best sample only)
    momentum_mean: float = 0.1  # weight of the old mean in the update
    init_std: tuple[float, ...] | None = None  # initial std per dimension (None = half the bound range)
    min_std: float = 0.05  # floor on the std, as a fraction of the bound range
    energy: Literal["final", "sum", "min"] = "final"  # on the last predicted frame, summed, or the horizon's lowest
    include_mean: bool = True  # evaluate the current mean as one of the samples each iteration
    keep_elites: int = 0  # best sequences of an iteration scored again in the next (iCEM; 0 = none)
    pick: Pick = "mean"  # the plan: the final mean, or the lowest-energy sequence seen ("best", as iCEM)
    chunk: int = 0  # roll out at most this many samples at once (0 = all in one batch)

    def __post_init__(self):
        _check_search(self)
        if not 1 <= self.topk <= self.samples:
            raise ValueError("topk must be in [1, samples]")
        _check_keep(self)
        if self.temperature <= 0 or self.min_std < 0:
            raise ValueError("temperature must be > 0 and min_std >= 0")
        if not 0.0 <= self.momentum_mean < 1.0:
            raise ValueError("momentum_mean must be in [0, 1)")
        if self.init_std is not None and (min(self.init_std, default=0) <= 0
                                          or (self.low and len(self.init_std) != len(self.low))):
            raise ValueError("init_std needs one positive value per action dimension")

    @property
    def action_dim(self) -> int:
        return len(self.low)


@dataclass(frozen=True)
class GDConfig:
    """Gradient descent on the actions through the differentiable predictor (`vjepa_cli.plan.gd`), as DINO-WM's
    GD planner: `samples` sequences (the start mean and Gaussian perturbations of it) each take `iterations`
    Adam steps on the energy, projected onto the bounds after every step; the lowest energy wins."""

    low: tuple[float, ...] = ()  # per-dimension lower action bound; () = unset (filled in from the model)
    high: tuple[float, ...] = ()  # per-dimension upper action bound
    horizon: int = 3  # actions per planned sequence
    samples: int = 8  # sequences optimised in parallel (restarts)
    iterations: int = 20  # gradient steps
    lr: float = 0.1  # Adam learning rate, as a fraction of the bound range
    init_std: float = 0.3  # std of the restarts around the start mean, as a fraction of the bound range
    energy: Literal["final", "sum", "min"] = "final"  # on the last predicted frame, summed, or the horizon's lowest
    chunk: int = 0  # roll out at most this many samples at once (0 = all in one batch)

    def __post_init__(self):
        _check_search(self)
        if self.lr <= 0 or self.init_std < 0:
            raise ValueError("lr must be > 0 and init_std >= 0")

    @property
    def action_dim(self) -> int:
        return len(self.low)


PlannerConfig = CEMConfig | MPPIConfig | GDConfig  # what `vjepa_cli.plan.make_planner` takes
