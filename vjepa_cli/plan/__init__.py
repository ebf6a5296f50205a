"""Planning with a world model: planners behind one interface (`Planner`: CEM today), and MPC around them."""

from vjepa_cli.config.plan import CEMConfig
from vjepa_cli.plan.base import Planner, PlanResult, energy_l1, rollout_energy
from vjepa_cli.plan.cem import CEMPlanner, cem_plan
from vjepa_cli.plan.mpc import MPC, EpisodeLog, PolicyPrior, run_mpc_episode, run_policy_episode

__all__ = ["CEMConfig", "CEMPlanner", "MPC", "EpisodeLog", "PlanResult", "Planner", "PolicyPrior", "cem_plan",
           "energy_l1", "rollout_energy", "run_mpc_episode", "run_policy_episode"]
