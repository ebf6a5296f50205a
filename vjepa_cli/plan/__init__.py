"""Planning with a world model: the cross-entropy method over action sequences."""

from vjepa_cli.plan.cem import CEMConfig, PlanResult, cem_plan, energy_l1

__all__ = ["CEMConfig", "PlanResult", "cem_plan", "energy_l1"]
