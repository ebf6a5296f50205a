"""Environments by name: an explicit table of factories, plus `gym:<id>` for any Gymnasium environment.

A new built-in environment is one file in `envs/` with a class that takes `size` (the frame side in pixels)
and implements `GoalEnv`; add it to `ENVS` here (or call `register_env` from your own code).
"""

from __future__ import annotations

from collections.abc import Callable

from vjepa_cli.envs.base import Env, GoalEnv
from vjepa_cli.envs.push2d import Push2D
from vjepa_cli.envs.reach2d import Reach2D
from vjepa_cli.errors import VjepaError

GYM_PREFIX = "gym:"  # `gym:<id>` makes a Gymnasium environment through the optional adapter

EnvFactory = Callable[..., GoalEnv]  # factory(size=frame side in pixels) -> environment

ENVS: dict[str, EnvFactory] = {
    "reach2d": Reach2D,
    "push2d": Push2D,
}


def register_env(name: str, factory: EnvFactory) -> None:
    """Add an environment under `name` (a new name; `gym:` names are reserved for Gymnasium ids)."""
    if not name or name.startswith(GYM_PREFIX):
        raise ValueError(f"environment names must be non-empty and not start with '{GYM_PREFIX}': {name!r}")
    if name in ENVS:
        raise ValueError(f"environment '{name}' is already registered")
    ENVS[name] = factory


def env_names() -> list[str]:
    """The registered names (without the open-ended `gym:<id>`)."""
    return list(ENVS)


def make_env(name: str, size: int = 64, goal_steps: int = 0, goal_policy: str = "random",
             success_radius: float = 0.0) -> Env:
    """A registered environment by name, or `gym:<id>` through the optional Gymnasium adapter (the goal
    settings apply to Gymnasium environments without goals of their own, see `envs/gym.py`)."""
    if name.startswith(GYM_PREFIX):
        from vjepa_cli.envs.gym import make_gym_env

        return make_gym_env(name[len(GYM_PREFIX):], size=size, goal_steps=goal_steps, goal_policy=goal_policy,
                            success_radius=success_radius)
    if name not in ENVS:
        raise VjepaError(f"unknown environment '{name}'",
                         f"registered: {', '.join(ENVS)}; or {GYM_PREFIX}<Gymnasium id> (pip install vjepa-cli[sim])")
    return ENVS[name](size=size)
