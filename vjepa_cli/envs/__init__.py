"""Environments for world models: one simulator per file behind a registry (`make_env`), the Gymnasium
adapter (`gym:<id>`), and episode collection."""

from vjepa_cli.envs.base import Env, EnvSpec, GoalEnv
from vjepa_cli.envs.registry import ENVS, env_names, make_env, register_env

__all__ = ["ENVS", "Env", "EnvSpec", "GoalEnv", "env_names", "make_env", "register_env"]
