"""Environments by name: an explicit table of factories, plus `gym:<id>` for any Gymnasium environment.

The built-in simulators are Gymnasium environments (`vjepa/Reach2D-v0`, `vjepa/Push2D-v0`, see
`envs/gymnasium_envs.py`); their short names `reach2d` and `push2d` are aliases (`ALIASES`) that go through
the same Gymnasium adapter as `gym:<id>`, so a short name and its id give the same episodes for the same seed.
Your own environment: a class that takes `size` (the frame side in pixels) and implements `GoalEnv`, added
with `register_env` (or register it with Gymnasium and use `gym:<id>`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from vjepa_cli.envs.base import Env, GoalEnv
from vjepa_cli.errors import VjepaError

GYM_PREFIX = "gym:"  # `gym:<id>` makes a Gymnasium environment through the adapter (`envs/gym.py`)

EnvFactory = Callable[..., GoalEnv]  # factory(size=frame side in pixels) -> environment

# short name -> the Gymnasium id it stands for (the built-in simulators)
ALIASES: dict[str, str] = {"reach2d": "vjepa/Reach2D-v0", "push2d": "vjepa/Push2D-v0"}


def _alias_factory(name: str, size: int = 64, **goal) -> Env:
    """A built-in short name made through the Gymnasium adapter (named by the short name)."""
    from vjepa_cli.envs.gym import make_gym_env

    return make_gym_env(ALIASES[name], size=size, name=name, **goal)


ENVS: dict[str, EnvFactory] = {name: partial(_alias_factory, name) for name in ALIASES}


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


def canonical_env(name: str) -> str:
    """`push2d` -> `gym:vjepa/Push2D-v0`: one name per environment (for comparing a model's and a run's)."""
    return GYM_PREFIX + ALIASES[name] if name in ALIASES else name


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
