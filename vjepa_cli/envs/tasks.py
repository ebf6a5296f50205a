"""What `vjepa wm` knows about particular Gymnasium environments: how to make and render them, which part of
the state says whether the task is solved, and the success test. Any other environment uses the flattened
observation and a distance threshold from the recipe (`GENERIC`).

Reacher-v5 (MuJoCo): rendered top-down (world +x right, +y up), shadows off, its own target hidden: the goal is
the goal image. Task state = fingertip (x, y) in metres; solved within `radius` of the goal's fingertip.
PushT (gym-pusht): task state = block pose (x, y, angle) in pixels of the 512 px arena and radians; solved when
the block is within `radius` px and pi / 9 rad of the goal pose (our threshold, stated in the README). Its
observation (agent x, y, block x, y, angle in [0, 2 pi)) is recorded with the angle as its cosine and sine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def flatten_obs(obs: Any) -> np.ndarray:
    """An observation (array, or dict of arrays in sorted key order, images left out) -> float32 [S]."""
    if isinstance(obs, dict):
        parts = [flatten_obs(obs[k]) for k in sorted(obs) if not (np.ndim(obs[k]) >= 3 or k == "pixels")]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return np.asarray(obs, dtype=np.float32).reshape(-1)


def unwrap_angles(flat: np.ndarray, angles: tuple[int, ...]) -> np.ndarray:
    """A flattened observation [S] -> the recorded state [S + len(angles)]: each angle entry (radians) becomes its
    cosine followed by its sine, so that a state that turns past 2 pi stays continuous for regression."""
    if not angles:
        return flat
    parts = []
    for i, x in enumerate(flat):
        parts += [np.cos(x), np.sin(x)] if i in angles else [x]
    return np.asarray(parts, dtype=np.float32)


def angle_names(names: tuple[str, ...], angles: tuple[int, ...]) -> tuple[str, ...]:
    """State names matching `unwrap_angles`: an angle entry `n` becomes `n_cos`, `n_sin`."""
    out: list[str] = []
    for i, n in enumerate(names):
        out += [f"{n}_cos", f"{n}_sin"] if i in angles else [n]
    return tuple(out)


def _no_setup(env) -> None:
    return None


@dataclass(frozen=True)
class Task:
    """Environment-specific knowledge; every callable takes the Gymnasium env (wrapped) where it needs it."""

    make_kwargs: Callable[[int], dict]  # frame side -> extra gymnasium.make keyword arguments
    state: Callable[[Any, Any, dict], np.ndarray]  # (env, obs, info) -> task state [K]
    distance: Callable[[np.ndarray, np.ndarray], float]  # (task state, goal task state) -> distance
    solved: Callable[[np.ndarray, np.ndarray, float], bool]  # (state, goal, radius) -> success
    radius: float  # default success radius (the recipe's data.success_radius overrides it when > 0)
    setup: Callable[[Any], None] = _no_setup  # once after make (e.g. hide the target, shadows off)
    # (env, info, rng, K) -> K actions of a scripted goal policy (`--goal-policy scripted`), or a closed loop
    # (adapter) -> the next action; None = no scripted policy
    scripted: Callable[[Any, dict, np.random.Generator, int], Any] | None = None
    angles: tuple[int, ...] = ()  # entries of the flattened observation that are angles (recorded as cos, sin)


def _l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def _within(a: np.ndarray, b: np.ndarray, radius: float) -> bool:
    return _l2(a, b) < radius


# --- Reacher-v5 -------------------------------------------------------------------------------------------
def _reacher_kwargs(size: int) -> dict:
    cam = {"trackbodyid": -1, "distance": 0.55, "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3)}
    return {"width": size, "height": size, "default_camera_config": cam}


def _reacher_setup(env) -> None:
    model = env.unwrapped.model
    model.light_castshadow[:] = 0  # shadows dominate software-rendering cost
    model.geom_rgba[model.geom("target").id, 3] = 0.0  # the goal is an image: hide the env's own target


def _reacher_state(env, obs, info) -> np.ndarray:
    return np.asarray(env.unwrapped.data.body("fingertip").xpos[:2], dtype=np.float32).copy()


# --- PushT ------------------------------------------------------------------------------------------------
def _pusht_state(env, obs, info) -> np.ndarray:
    return np.asarray(info["block_pose"], dtype=np.float32).copy()  # (x, y, angle)


def _angle_gap(a: float, b: float) -> float:
    return float(abs((a - b + np.pi) % (2 * np.pi) - np.pi))


def _pusht_distance(s: np.ndarray, g: np.ndarray) -> float:
    return _l2(s[:2], g[:2])  # block position error, arena pixels


def _pusht_solved(s: np.ndarray, g: np.ndarray, radius: float) -> bool:
    return _pusht_distance(s, g) < radius and _angle_gap(float(s[2]), float(g[2])) < np.pi / 9


def _pusht_push(env, info: dict, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """Move behind the block along a random direction, then push through it: K absolute agent targets."""
    block, agent = np.asarray(info["block_pose"][:2], np.float64), np.asarray(info["pos_agent"], np.float64)
    ang = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(ang), np.sin(ang)])
    behind, through = block - 70 * u, block + rng.uniform(20, 60) * u
    half = max(k // 3, 1)
    path = [agent + (behind - agent) * (i + 1) / half for i in range(half)]
    path += [behind + (through - behind) * (i + 1) / (k - half) for i in range(k - half)]
    return [np.clip(p, 0, 512).astype(np.float32) for p in path]


def _pusht_push_relative(env, info: dict, rng: np.random.Generator, k: int):
    """`_pusht_push`'s waypoints as a closed loop for relative actions: each step offsets the agent to its next
    waypoint (the same targets as the absolute push wherever an offset fits the action bounds)."""
    path, step = _pusht_push(env, info, rng, k), iter(range(k))

    def act(adapter) -> np.ndarray:
        agent = np.asarray(env.unwrapped.agent.position, np.float64)
        low, high = np.asarray(adapter.spec.action_low), np.asarray(adapter.spec.action_high)
        return np.clip(path[next(step)] - agent, low, high).astype(np.float32)

    return act


def _obs_state(env, obs, info) -> np.ndarray:
    return flatten_obs(obs)


TASKS: dict[str, Task] = {
    "Reacher-v5": Task(_reacher_kwargs, _reacher_state, _l2, _within, radius=0.02, setup=_reacher_setup),
    "gym_pusht/PushT-v0": Task(lambda size: {}, _pusht_state, _pusht_distance, _pusht_solved, radius=20.0,
                               scripted=_pusht_push, angles=(4,)),
    "vjepa/PushTRelative-v0": Task(lambda size: {}, _pusht_state, _pusht_distance, _pusht_solved, radius=20.0,
                                   scripted=_pusht_push_relative, angles=(4,)),
    # the built-in simulators as Gymnasium environments: they report their own goal, distance and success
    "vjepa/Reach2D-v0": Task(lambda size: {"size": size}, _obs_state, _l2, _within, radius=0.05),
    "vjepa/Push2D-v0": Task(lambda size: {"size": size}, _obs_state, _l2, _within, radius=0.06),
}
GENERIC = Task(lambda size: {}, _obs_state, _l2, _within, radius=0.0)  # radius from the recipe


def task_for(env_id: str) -> Task:
    """The known task of a Gymnasium id, else the generic one (observation distance)."""
    return TASKS.get(env_id, GENERIC)
