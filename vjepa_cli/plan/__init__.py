"""Planning with a world model: planners behind one interface (`Planner`: CEM, MPPI, gradient descent) chosen
by name (`make_planner`), and MPC around them."""

from vjepa_cli.config.plan import CEMConfig, GDConfig, MPPIConfig
from vjepa_cli.plan.base import Planner, PlanResult, energy_l1, rollout_energy
from vjepa_cli.plan.cem import CEMPlanner, cem_plan
from vjepa_cli.plan.gd import GDPlanner, gd_plan
from vjepa_cli.plan.mpc import MPC, EpisodeLog, PolicyPrior, run_mpc_episode, run_policy_episode
from vjepa_cli.plan.mppi import MPPIPlanner, mppi_plan
from vjepa_cli.plan.registry import PLANNERS, make_planner

__all__ = ["CEMConfig", "CEMPlanner", "GDConfig", "GDPlanner", "MPC", "MPPIConfig", "MPPIPlanner", "EpisodeLog",
           "PLANNERS", "PlanResult", "Planner", "PolicyPrior", "cem_plan", "energy_l1", "gd_plan", "make_planner",
           "mppi_plan", "rollout_energy", "run_mpc_episode", "run_policy_episode"]
