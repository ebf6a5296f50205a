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

from dataclasses import dataclass
from typing import Any

import torch

from vjepa_cli.config.plan import CEMConfig
from vjepa_cli.plan.base import (
    BoundedPlanner,
    EnergyFn,
    PlanResult,
    RolloutFn,
    sampling_plan,
)


@torch.no_grad()
def cem_plan(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, cfg: CEMConfig,
             generator: torch.Generator, init_mean: torch.Tensor | None = None,
             energy_fn: EnergyFn | None = None) -> PlanResult:
    """Plan `cfg.horizon` actions whose predicted outcome is closest (L1) to the goal features.

    Args:
        rollout_fn: `rollout_fn(z0, actions [S, H, A]) -> [S, H, *F]` predicted features after each action.
        z0: the start (passed through to `rollout_fn` untouched, e.g. features [N, D]).
        z_goal: goal features `[*F]`, matching one predicted step.
        cfg: CEM settings (bounds, horizon, samples, ...).
        generator: the random source; its device is where samples are drawn.
        init_mean: optional `[H, A]` (or `[A]`, repeated) starting mean, e.g. from a policy prior.
    """

    def refit(mean, std, elites, elite_e, floor):  # elites (K, H, A): moment matching with momentum
        mean = cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * elites.mean(0)
        e_std = elites.std(0, unbiased=False) if cfg.topk > 1 else torch.zeros_like(std)
        return mean, torch.maximum(cfg.momentum_std * std + (1 - cfg.momentum_std) * e_std, floor)

    return sampling_plan(rollout_fn, z0, z_goal, cfg, generator, init_mean, energy_fn, refit)


@dataclass(frozen=True)
class CEMPlanner(BoundedPlanner):
    """`cem_plan` behind the `Planner` interface."""

    cfg: CEMConfig  # settings with the action bounds set
    plan_fn = staticmethod(cem_plan)
