"""Cross-entropy method (CEM) over action sequences, for planning with a learned world model.

Rubinstein, "The cross-entropy method for combinatorial and continuous optimization" (1999); used for
goal-image planning with a latent world model in V-JEPA 2-AC (Assran et al., "V-JEPA 2", 2025, sec. 4).

Each iteration samples `samples` action sequences from a per-step, per-dimension Gaussian, clips them to
the action bounds, rolls them all out in one batch, scores them by the L1 distance between predicted and
goal features, keeps the `topk` lowest energies, and moves the Gaussian toward the elites with momentum
(`new = (1 - m) * elite_stat + m * old`). Nothing is specific to one robot: the action dimension and bounds
come from the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

# rollout_fn(z0, actions [S, H, A]) -> predicted features [S, H, *F] (one entry per horizon step)
RolloutFn = Callable[[Any, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CEMConfig:
    """Cross-entropy method settings. `low`/`high` give the action dimension A and its bounds."""

    low: tuple[float, ...] = (-1.0,)  # per-dimension lower action bound (samples are clipped to it)
    high: tuple[float, ...] = (1.0,)  # per-dimension upper action bound
    horizon: int = 3  # actions per planned sequence
    samples: int = 128  # sequences sampled per iteration
    topk: int = 16  # elites kept per iteration
    iterations: int = 6  # CEM iterations
    momentum_mean: float = 0.1  # weight of the old mean in the update (0 = jump to the elite mean)
    momentum_std: float = 0.1  # weight of the old std in the update
    init_std: tuple[float, ...] | None = None  # initial std per dimension (None = half the bound range)
    min_std: float = 1e-3  # floor on the std, as a fraction of the bound range (keeps exploring)
    energy: Literal["final", "sum"] = "final"  # L1 on the last predicted frame, or summed over the horizon
    include_mean: bool = True  # evaluate the current mean as one of the samples each iteration
    chunk: int = 0  # roll out at most this many samples at once (0 = all in one batch)

    def __post_init__(self):
        if len(self.low) == 0 or len(self.low) != len(self.high):
            raise ValueError("low and high must be non-empty and of equal length")
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("every low bound must be < its high bound")
        if self.init_std is not None and (len(self.init_std) != len(self.low) or min(self.init_std) <= 0):
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


@dataclass
class PlanResult:
    """The planned sequence and how sure the planner is about it."""

    actions: torch.Tensor  # (H, A) the final mean, clipped to the bounds; actions[0] is executed in MPC
    energy: float  # energy of `actions` under the model
    confidence: float  # 1 / (1 + elite_spread / elite_mean): 1 = elites agree, -> 0 = they disagree
    elite_spread: float  # std of the last iteration's elite energies
    history: list[dict[str, float]] = field(default_factory=list)  # per iteration: best, elite mean/std, std


def energy_l1(pred: torch.Tensor, z_goal: torch.Tensor, mode: str = "final") -> torch.Tensor:
    """L1 energy of predictions `pred` [S, H, *F] against the goal features `z_goal` [*F] -> [S]."""
    diff = (pred - z_goal.unsqueeze(0).unsqueeze(0)).abs().flatten(2).mean(-1)  # (S, H)
    return diff[:, -1] if mode == "final" else diff.sum(1)


def _rollout_energy(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, actions: torch.Tensor,
                    cfg: CEMConfig) -> torch.Tensor:
    step = cfg.chunk or actions.shape[0]
    out = [energy_l1(rollout_fn(z0, a), z_goal, cfg.energy) for a in actions.split(step)]
    return torch.cat(out)  # (S,)


@torch.no_grad()
def cem_plan(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, cfg: CEMConfig,
             generator: torch.Generator, init_mean: torch.Tensor | None = None) -> PlanResult:
    """Plan `cfg.horizon` actions whose predicted outcome is closest (L1) to the goal features.

    Args:
        rollout_fn: `rollout_fn(z0, actions [S, H, A]) -> [S, H, *F]` predicted features after each action.
        z0: the start (passed through to `rollout_fn` untouched, e.g. features [N, D]).
        z_goal: goal features `[*F]`, matching one predicted step.
        cfg: CEM settings (bounds, horizon, samples, ...).
        generator: the random source; its device is where samples are drawn.
        init_mean: optional `[H, A]` (or `[A]`, repeated) starting mean, e.g. from a policy prior.
    """
    dev = z_goal.device
    low = torch.tensor(cfg.low, dtype=torch.float32, device=dev)  # (A,)
    high = torch.tensor(cfg.high, dtype=torch.float32, device=dev)
    H, A = cfg.horizon, cfg.action_dim
    if init_mean is None:
        mean = ((low + high) / 2).expand(H, A).clone()  # (H, A)
    else:
        if tuple(init_mean.shape) not in ((H, A), (A,)):
            raise ValueError(f"init_mean must be [{H}, {A}] or [{A}], got {list(init_mean.shape)}")
        mean = init_mean.to(dev, torch.float32).expand(H, A).clone()
        mean = torch.minimum(torch.maximum(mean, low), high)
    span = high - low
    std0 = span / 2 if cfg.init_std is None else torch.tensor(cfg.init_std, dtype=torch.float32, device=dev)
    std = std0.expand(H, A).clone()
    floor = cfg.min_std * span
    history: list[dict[str, float]] = []
    elite_e = torch.zeros(1, device=dev)
    for _ in range(cfg.iterations):
        noise = torch.randn((cfg.samples, H, A), generator=generator, device=generator.device).to(dev)
        cand = mean + std * noise  # (S, H, A)
        if cfg.include_mean:
            cand[0] = mean
        cand = torch.minimum(torch.maximum(cand, low), high)
        e = _rollout_energy(rollout_fn, z0, z_goal, cand, cfg)  # (S,)
        elite_e, idx = torch.topk(e, cfg.topk, largest=False)
        elites = cand[idx]  # (K, H, A)
        mean = cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * elites.mean(0)
        e_std = elites.std(0, unbiased=False) if cfg.topk > 1 else torch.zeros_like(std)
        std = torch.maximum(cfg.momentum_std * std + (1 - cfg.momentum_std) * e_std, floor)
        history.append({"best": float(elite_e[0]), "elite_mean": float(elite_e.mean()),
                        "elite_std": float(elite_e.std(unbiased=False)), "action_std": float(std.mean())})
    plan = torch.minimum(torch.maximum(mean, low), high)
    energy = float(_rollout_energy(rollout_fn, z0, z_goal, plan.unsqueeze(0), cfg)[0])
    spread = float(elite_e.std(unbiased=False))
    scale = float(elite_e.mean().abs())
    conf = 1.0 / (1.0 + spread / scale) if scale > 0 and math.isfinite(spread) else 1.0
    return PlanResult(actions=plan, energy=energy, confidence=conf, elite_spread=spread, history=history)
