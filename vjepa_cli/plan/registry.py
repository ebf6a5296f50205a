"""Planners by name (`plan.method`): each entry is its settings class and the planner built from it.

A new planner is one file in `plan/` with a frozen settings dataclass (with `low`/`high` bounds) and a class
implementing `Planner`; add both here.
"""

from __future__ import annotations

from vjepa_cli.config.plan import CEMConfig, GDConfig, MPPIConfig, PlannerConfig
from vjepa_cli.plan.base import EnergyFn, Planner, RolloutFn
from vjepa_cli.plan.cem import CEMPlanner
from vjepa_cli.plan.gd import GDPlanner
from vjepa_cli.plan.mppi import MPPIPlanner

PLANNERS: dict[str, tuple[type, type]] = {
    "cem": (CEMConfig, CEMPlanner),  # cross-entropy method (V-JEPA 2-AC)
    "mppi": (MPPIConfig, MPPIPlanner),  # model-predictive path integral (TD-MPC2)
    "gd": (GDConfig, GDPlanner),  # gradient descent through the predictor (DINO-WM)
}


def make_planner(method: str, rollout_fn: RolloutFn, cfg: PlannerConfig, energy_fn: EnergyFn | None = None) -> Planner:
    """The planner registered as `method`, over `rollout_fn`, with settings `cfg` of the matching class;
    `energy_fn` replaces the L1 goal energy (see `plan.base.score`)."""
    if method not in PLANNERS:
        raise ValueError(f"unknown planner '{method}': use one of {', '.join(PLANNERS)}")
    cfg_cls, planner_cls = PLANNERS[method]
    if not isinstance(cfg, cfg_cls):
        raise TypeError(f"planner '{method}' takes a {cfg_cls.__name__}, got {type(cfg).__name__}")
    return planner_cls(rollout_fn, cfg, energy_fn)
