"""What every planner shares: the interface MPC calls, the result it returns, and the goal energy.

A planner searches action sequences [H, A] within per-dimension bounds whose predicted outcome (a world
model's rollout) is closest to goal features. CEM (`plan/cem.py`), MPPI (`plan/mppi.py`) and gradient descent
through the predictor (`plan/gd.py`) implement `Planner` with the same energy, bounds and batching
(`rollout_energy`, `bounds`, `start_mean`); `plan/registry.py` picks one by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import torch

# rollout_fn(z0, actions [S, H, A]) -> predicted features [S, H, *F] (one entry per horizon step)
RolloutFn = Callable[[Any, torch.Tensor], torch.Tensor]
# energy_fn(pred [S, H, *F], z_goal [*F]) -> [S]: replaces the L1 goal energy (e.g. blended with a learned reward)
EnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class PlanResult:
    """The planned sequence and how sure the planner is about it."""

    actions: torch.Tensor  # (H, A) the plan, within the bounds; actions[0] is executed in MPC
    energy: float  # energy of `actions` under the model
    confidence: float  # 1 / (1 + elite_spread / elite_mean): 1 = candidates agree, -> 0 = they disagree
    elite_spread: float  # std of the last iteration's best energies
    history: list[dict[str, float]] = field(default_factory=list)  # per iteration: best, elite mean/std, std


class Planner(Protocol):
    """Plans `horizon` actions from start features toward goal features, within [low, high]."""

    @property
    def low(self) -> tuple[float, ...]: ...  # (A,) lower action bounds

    @property
    def high(self) -> tuple[float, ...]: ...  # (A,) upper action bounds

    def plan(self, z0: Any, z_goal: torch.Tensor, generator: torch.Generator,
             init_mean: torch.Tensor | None = None) -> PlanResult:
        """`z0`: the start (passed to the rollout untouched, e.g. features [N, D]); `z_goal`: goal features
        [*F]; `generator`: the random source; `init_mean`: optional [H, A] or [A] start of the search
        (a warm start or a policy prior's action)."""
        ...


EnergyMode = Literal["final", "sum", "min"]


def over_horizon(d: torch.Tensor, mode: EnergyMode) -> torch.Tensor:
    """Per-step energies [S, H] -> [S]: the last step's ("final"), their sum ("sum"), or the lowest ("min": the
    sequence scores by its closest approach, so one that passes the goal early is as good as one that stays)."""
    if mode == "final":
        return d[:, -1]
    if mode == "sum":
        return d.sum(1)
    if mode == "min":
        return d.min(1).values
    raise ValueError(f"unknown energy mode '{mode}': use final, sum or min")


def energy_l1(pred: torch.Tensor, z_goal: torch.Tensor, mode: EnergyMode = "final") -> torch.Tensor:
    """L1 energy of predictions `pred` [S, H, *F] against the goal features `z_goal` [*F] -> [S]."""
    diff = (pred - z_goal.unsqueeze(0).unsqueeze(0)).abs().flatten(2).mean(-1)  # (S, H)
    return over_horizon(diff, mode)


def score(pred: torch.Tensor, z_goal: torch.Tensor, mode: EnergyMode = "final",
          energy_fn: EnergyFn | None = None) -> torch.Tensor:
    """Energy of predictions [S, H, *F] -> [S]: `energy_fn` when given, else the L1 goal energy."""
    return energy_l1(pred, z_goal, mode) if energy_fn is None else energy_fn(pred, z_goal)


def rollout_energy(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, actions: torch.Tensor,
                   mode: EnergyMode = "final", chunk: int = 0,
                   energy_fn: EnergyFn | None = None) -> torch.Tensor:
    """Energy of every candidate in `actions` [S, H, A] -> [S], rolled out `chunk` at a time (0 = all at once)."""
    step = chunk or actions.shape[0]
    out = [score(rollout_fn(z0, a), z_goal, mode, energy_fn) for a in actions.split(step)]
    return torch.cat(out)  # (S,)


def bounds(low, high, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension bounds as tensors (A,) on `device`; empty bounds are a configuration error."""
    if not low:
        raise ValueError("the planner config has no action bounds: set low and high")
    return (torch.tensor(low, dtype=torch.float32, device=device),
            torch.tensor(high, dtype=torch.float32, device=device))


def start_mean(low: torch.Tensor, high: torch.Tensor, horizon: int,
               init_mean: torch.Tensor | None) -> torch.Tensor:
    """The search's start [H, A]: the bounds' midpoint, or `init_mean` ([H, A] or [A], repeated) clipped."""
    H, A = horizon, low.shape[0]
    if init_mean is None:
        return ((low + high) / 2).expand(H, A).clone()
    if tuple(init_mean.shape) not in ((H, A), (A,)):
        raise ValueError(f"init_mean must be [{H}, {A}] or [{A}], got {list(init_mean.shape)}")
    mean = init_mean.to(low.device, torch.float32).expand(H, A).clone()
    return torch.minimum(torch.maximum(mean, low), high)


def confidence(energies: torch.Tensor) -> tuple[float, float]:
    """(confidence, spread) of the best candidates' energies [K]: 1 / (1 + std / |mean|), 1 when they agree."""
    spread = float(energies.std(unbiased=False)) if energies.numel() > 1 else 0.0
    scale = float(energies.mean().abs())
    conf = 1.0 / (1.0 + spread / scale) if scale > 0 and math.isfinite(spread) else 1.0
    return conf, spread


Refit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                 tuple[torch.Tensor, torch.Tensor]]


def sampling_plan(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, cfg: Any, generator: torch.Generator,
                  init_mean: torch.Tensor | None, energy_fn: EnergyFn | None, refit: Refit) -> PlanResult:
    """The loop CEM and MPPI share: sample `cfg.samples` action sequences around (mean, std) within the bounds,
    score them, keep the `cfg.topk` best, and let `refit(mean, std, elites [K, H, A], elite_e [K], floor)` give the
    next (mean, std); `cfg.iterations` times, then `finish_plan`. As in iCEM (Pinneri et al., "Sample-efficient
    cross-entropy method for real-time planning", CoRL 2020), `cfg.keep_elites` of an iteration's best sequences
    are scored again in the next instead of as many new samples, and `cfg.pick="best"` returns the lowest-energy
    sequence seen (the final mean included) instead of the final mean."""
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
    kept = None  # the previous iteration's best `cfg.keep_elites` sequences (iCEM)
    best = (math.inf, None)  # the lowest energy seen and its sequence [H, A]
    for _ in range(cfg.iterations):
        noise = torch.randn((cfg.samples, H, A), generator=generator, device=generator.device).to(dev)
        cand = mean + std * noise  # (S, H, A)
        if cfg.include_mean:
            cand[0] = mean
        if kept is not None:  # replace the last samples, so the budget stays `samples` rollouts
            cand[cand.shape[0] - kept.shape[0]:] = kept
        cand = torch.minimum(torch.maximum(cand, low), high)
        e = rollout_energy(rollout_fn, z0, z_goal, cand, cfg.energy, cfg.chunk, energy_fn)  # (S,)
        elite_e, idx = torch.topk(e, cfg.topk, largest=False)
        if float(elite_e[0]) < best[0]:
            best = (float(elite_e[0]), cand[idx[0]].clone())
        kept = cand[idx[:cfg.keep_elites]].clone() if cfg.keep_elites else None
        mean, std = refit(mean, std, cand[idx], elite_e, floor)
        history.append({"best": float(elite_e[0]), "elite_mean": float(elite_e.mean()),
                        "elite_std": float(elite_e.std(unbiased=False)) if len(elite_e) > 1 else 0.0,
                        "action_std": float(std.mean())})
    res = finish_plan(rollout_fn, z0, z_goal, mean, low, high, cfg, energy_fn, elite_e, history)
    if cfg.pick == "best" and best[1] is not None and best[0] < res.energy:
        res.actions, res.energy = best[1], best[0]
    return res


def finish_plan(rollout_fn: RolloutFn, z0: Any, z_goal: torch.Tensor, mean: torch.Tensor, low: torch.Tensor,
                high: torch.Tensor, cfg: Any, energy_fn: EnergyFn | None, elite_e: torch.Tensor,
                history: list[dict[str, float]]) -> PlanResult:
    """The last step every sampling planner shares: clip the final mean to the bounds, score it, and rate the
    confidence from the last elites' energies."""
    plan = torch.minimum(torch.maximum(mean, low), high)  # (H, A)
    energy = float(rollout_energy(rollout_fn, z0, z_goal, plan.unsqueeze(0), cfg.energy, cfg.chunk, energy_fn)[0])
    conf, spread = confidence(elite_e)
    return PlanResult(actions=plan, energy=energy, confidence=conf, elite_spread=spread, history=history)


@dataclass(frozen=True)
class BoundedPlanner:
    """A plan function behind the `Planner` interface: a rollout function, the planner's settings (bounds
    included) and an optional energy. Subclasses name their function in `plan_fn`."""

    rollout_fn: RolloutFn  # rollout_fn(z0, actions [S, H, A]) -> [S, H, *F]
    cfg: Any  # the planner's settings, with the action bounds set
    energy_fn: EnergyFn | None = None  # replaces the L1 goal energy (None = L1)
    plan_fn: ClassVar[Callable[..., PlanResult]]

    @property
    def low(self) -> tuple[float, ...]:
        return self.cfg.low

    @property
    def high(self) -> tuple[float, ...]:
        return self.cfg.high

    def plan(self, z0: Any, z_goal: torch.Tensor, generator: torch.Generator,
             init_mean: torch.Tensor | None = None) -> PlanResult:
        return type(self).plan_fn(self.rollout_fn, z0, z_goal, self.cfg, generator, init_mean=init_mean,
                                  energy_fn=self.energy_fn)
