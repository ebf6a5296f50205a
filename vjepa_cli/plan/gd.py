"""Gradient-based planning: Adam on the action sequence through the differentiable world model.

As DINO-WM's GD planner (Zhou et al., "DINO-WM", 2024): the energy (L1 between predicted and goal features,
the same as CEM's) is differentiated with respect to the actions, which are projected back onto the bounds
after every step. `samples` restarts run in one batch (chunked like CEM); the lowest final energy wins. The
rollout function must be differentiable in the actions (`WorldModel.rollout` is: its weights are frozen,
but no `no_grad` blocks the actions' graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vjepa_cli.config.plan import GDConfig
from vjepa_cli.plan.base import (
    BoundedPlanner,
    EnergyFn,
    PlanResult,
    RolloutFn,
    bounds,
    confidence,
    rollout_energy,
    score,
    start_mean,
)


def gd_plan(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, cfg: GDConfig,
            generator: torch.Generator, init_mean: torch.Tensor | None = None,
            energy_fn: EnergyFn | None = None) -> PlanResult:
    """Plan `cfg.horizon` actions by projected gradient descent; arguments as `cem_plan`."""
    dev = z_goal.device
    low, high = bounds(cfg.low, cfg.high, dev)  # (A,)
    H, A = cfg.horizon, cfg.action_dim
    mean = start_mean(low, high, H, init_mean)  # (H, A)
    span = high - low
    noise = torch.randn((cfg.samples, H, A), generator=generator, device=generator.device).to(dev)
    noise[0] = 0  # the start mean itself is one of the restarts
    x0 = torch.minimum(torch.maximum(mean + cfg.init_std * span * noise, low), high)  # (S, H, A)
    u = ((x0 - low) / span).requires_grad_(True)  # optimised in [0, 1] units: one lr for unequal bounds
    opt = torch.optim.Adam([u], lr=cfg.lr)
    history: list[dict[str, float]] = []
    step = cfg.chunk or cfg.samples
    for _ in range(cfg.iterations):
        opt.zero_grad(set_to_none=True)
        total = []
        with torch.enable_grad():
            for part in u.split(step):  # backward per chunk: memory of one chunk at a time
                e = score(rollout_fn(z0, low + part * span), z_goal, cfg.energy, energy_fn)  # (s,)
                e.sum().backward()
                total.append(e.detach())
        opt.step()
        with torch.no_grad():
            u.clamp_(0.0, 1.0)  # project onto the bounds
        e_all = torch.cat(total)
        history.append({"best": float(e_all.min()), "mean": float(e_all.mean())})
    with torch.no_grad():
        cand = low + u.detach() * span  # (S, H, A), within the bounds
        e = rollout_energy(rollout_fn, z0, z_goal, cand, cfg.energy, cfg.chunk, energy_fn)  # (S,)
    best = int(e.argmin())
    conf, spread = confidence(e)
    return PlanResult(actions=cand[best], energy=float(e[best]), confidence=conf, elite_spread=spread,
                      history=history)


@dataclass(frozen=True)
class GDPlanner(BoundedPlanner):
    """`gd_plan` behind the `Planner` interface (needs a differentiable rollout)."""

    cfg: GDConfig  # settings with the action bounds set
    plan_fn = staticmethod(gd_plan)
