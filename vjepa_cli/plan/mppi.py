"""Model-predictive path integral control (MPPI) over action sequences.

Williams et al., "Information theoretic MPC for model-based reinforcement learning" (ICRA 2017); the
variant of TD-MPC2 (Hansen et al., 2024): sample around a per-step Gaussian, keep the `topk` best, move the
mean to their exponentially weighted average and the std to their weighted spread. The energy, bounds and
batching are CEM's (`plan/base.py`); only the update differs (weights instead of an unweighted elite mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vjepa_cli.config.plan import MPPIConfig
from vjepa_cli.plan.base import (
    BoundedPlanner,
    EnergyFn,
    PlanResult,
    RolloutFn,
    sampling_plan,
)


def mppi_weights(energies: torch.Tensor, temperature: float) -> torch.Tensor:
    """Weights [K] of elite energies [K] (ascending or not): softmax(-(e - e_min) / (T * (mean(e) - e_min)))."""
    gap = (energies.mean() - energies.min()).clamp_min(1e-12)  # scale-free: relative to the elites' gap
    return torch.softmax(-(energies - energies.min()) / (temperature * gap), dim=0)


@torch.no_grad()
def mppi_plan(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, cfg: MPPIConfig,
              generator: torch.Generator, init_mean: torch.Tensor | None = None,
              energy_fn: EnergyFn | None = None) -> PlanResult:
    """Plan `cfg.horizon` actions whose predicted outcome is closest (L1) to `z_goal`; arguments as `cem_plan`."""
    def refit(mean, std, elites, elite_e, floor):  # elites (K, H, A): energy-weighted moments
        w = mppi_weights(elite_e, cfg.temperature).view(-1, 1, 1)  # (K, 1, 1)
        new_mean = (w * elites).sum(0)  # (H, A)
        new_std = ((w * (elites - new_mean) ** 2).sum(0)).sqrt()
        return cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * new_mean, torch.maximum(new_std, floor)

    return sampling_plan(rollout_fn, z0, z_goal, cfg, generator, init_mean, energy_fn, refit)


@dataclass(frozen=True)
class MPPIPlanner(BoundedPlanner):
    """`mppi_plan` behind the `Planner` interface."""

    cfg: MPPIConfig  # settings with the action bounds set
    plan_fn = staticmethod(mppi_plan)
