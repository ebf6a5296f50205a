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
    bounds,
    finish_plan,
    rollout_energy,
    start_mean,
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
    dev = z_goal.device
    low, high = bounds(cfg.low, cfg.high, dev)  # (A,)
    H, A = cfg.horizon, cfg.action_dim
    mean = start_mean(low, high, H, init_mean)  # (H, A)
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
        e = rollout_energy(rollout_fn, z0, z_goal, cand, cfg.energy, cfg.chunk, energy_fn)  # (S,)
        elite_e, idx = torch.topk(e, cfg.topk, largest=False)
        w = mppi_weights(elite_e, cfg.temperature).view(-1, 1, 1)  # (K, 1, 1)
        elites = cand[idx]  # (K, H, A)
        new_mean = (w * elites).sum(0)  # (H, A)
        new_std = ((w * (elites - new_mean) ** 2).sum(0)).sqrt()
        mean = cfg.momentum_mean * mean + (1 - cfg.momentum_mean) * new_mean
        std = torch.maximum(new_std, floor)
        history.append({"best": float(elite_e[0]), "elite_mean": float(elite_e.mean()),
                        "elite_std": float(elite_e.std(unbiased=False)) if cfg.topk > 1 else 0.0,
                        "action_std": float(std.mean())})
    return finish_plan(rollout_fn, z0, z_goal, mean, low, high, cfg, energy_fn, elite_e, history)


@dataclass(frozen=True)
class MPPIPlanner(BoundedPlanner):
    """`mppi_plan` behind the `Planner` interface."""

    cfg: MPPIConfig  # settings with the action bounds set
    plan_fn = staticmethod(mppi_plan)
