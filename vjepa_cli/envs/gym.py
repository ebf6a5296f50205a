"""Gymnasium environments for `vjepa wm` (optional extra: `pip install vjepa-cli[sim]` or `[gym]`).

Any environment made with `render_mode="rgb_array"` and a 1-D `Box` action space works: frames come from
`env.render()`, area-resized to a square `size`; the observation (arrays, or dicts of arrays) is flattened into
the state. Goals follow DINO-WM's protocol where the environment has none of its own: reset with a seed, run
`goal_steps` actions of a goal policy, keep the last frame as the goal image and the task state (`envs/tasks.py`)
as the goal state, then reset again with the same seed; the "oracle" replays the goal actions. An environment
that puts `goal_image` (and optionally `distance`, `is_success`) in its `info` supplies its own goal.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from vjepa_cli.envs.base import EnvSpec
from vjepa_cli.envs.tasks import GENERIC, Task, angle_names, flatten_obs, task_for, unwrap_angles
from vjepa_cli.errors import VjepaError

# uniform actions; a Gaussian random walk from the bounds' midpoint; the task's scripted goal (PushT: a push)
GOAL_POLICIES = ("random", "walk", "scripted")


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Area (box-filter) resize of [H, W, >=3] uint8 to [size, size, 3]; nearest neighbour when enlarging."""
    frame = np.asarray(frame)[..., :3]
    h, w = frame.shape[:2]
    if h < size or w < size:
        rows, cols = np.arange(size) * h // size, np.arange(size) * w // size
        return np.ascontiguousarray(frame[rows][:, cols])
    r0, c0 = np.arange(size) * h // size, np.arange(size) * w // size  # bin starts
    # integer sums (exact, and half the time of summing a float copy of the frame): (size, w, 3) -> (size, size, 3)
    acc = np.add.reduceat(np.add.reduceat(frame, r0, axis=0, dtype=np.int32), c0, axis=1)
    counts = np.diff(np.append(r0, h))[:, None] * np.diff(np.append(c0, w))[None, :]
    return (acc.astype(np.float32) / counts[..., None] + 0.5).astype(np.uint8)


def _state_size(space) -> int:
    """Length of the flattened observation (`flatten_obs`) of a Box or a Dict of Boxes (images left out)."""
    sub = getattr(space, "spaces", None)
    if isinstance(sub, dict):
        return sum(_state_size(sub[k]) for k in sorted(sub) if k != "pixels")
    shape = tuple(getattr(space, "shape", None) or ())
    return int(np.prod(shape)) if 1 <= len(shape) <= 2 else 0


class GymAdapter:
    """A Gymnasium-API environment object behind the built-in `GoalEnv` interface."""

    def __init__(self, env, name: str = "gym", size: int = 64, task: Task = GENERIC, goal_steps: int = 0,
                 goal_policy: str = "random", success_radius: float = 0.0):
        space = env.action_space
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        if low is None or high is None or np.asarray(low).ndim != 1:
            raise VjepaError(f"{name}: the action space must be a 1-D Box", "discrete actions are not supported")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise VjepaError(f"{name}: the action space bounds must be finite")
        if getattr(env, "render_mode", None) != "rgb_array":
            raise VjepaError(f"{name}: the environment must be made with render_mode='rgb_array'")
        if goal_policy not in GOAL_POLICIES:
            raise VjepaError(f"unknown goal policy '{goal_policy}'", f"use one of {', '.join(GOAL_POLICIES)}")
        if goal_policy == "scripted" and task.scripted is None:
            raise VjepaError(f"{name}: no scripted goal policy for this environment", "use --goal-policy random")
        if goal_steps < 0:
            raise VjepaError("--goal-steps must be >= 0")
        self.env, self.size, self.task, self.done = env, size, task, False
        self.reward: float | None = None  # the last step's reward
        self.goal_steps, self.goal_policy = goal_steps, goal_policy
        self.radius = success_radius if success_radius > 0 else task.radius
        self._obs, self._info, self._rng = None, {}, np.random.default_rng(0)
        self._goal_img: np.ndarray | None = None
        self._goal_state: np.ndarray | None = None
        self._goal_obs: np.ndarray | None = None  # the goal frame's `state()` (what the state probe learns)
        self._goal_actions: list[np.ndarray] = []
        self._t = 0
        n_state = _state_size(env.observation_space)
        if task.angles and max(task.angles) >= n_state:
            raise VjepaError(f"{name}: angle entries {list(task.angles)} out of range for {n_state}-d observations")
        inner = getattr(env, "unwrapped", env)  # a simulator of ours names its actions and states
        a_names = getattr(inner, "action_names", None) or tuple(f"a{i}" for i in range(len(low)))
        s_names = getattr(inner, "state_names", None) or tuple(f"obs{i}" for i in range(n_state))
        s_names = angle_names(tuple(s_names), task.angles)
        self.spec = EnvSpec(name, tuple(a_names), tuple(float(x) for x in low),
                            tuple(float(x) for x in high), tuple(s_names),
                            fps=float(env.metadata.get("render_fps", 10)), success_radius=self.radius)

    @property
    def _inner(self):
        return getattr(self.env, "unwrapped", self.env)

    # --- the environment --------------------------------------------------------------------------------
    def _reset(self, seed: int) -> None:
        self._obs, self._info = self.env.reset(seed=seed)
        self._sync()
        self.done, self._t = False, 0

    def _sync(self) -> None:
        """MuJoCo leaves body positions at the pre-step pose after `step`: recompute them (no physics change)."""
        inner = self._inner
        if hasattr(inner, "model") and hasattr(inner, "data") and type(inner.model).__module__.startswith("mujoco"):
            import mujoco

            mujoco.mj_forward(inner.model, inner.data)

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Seeded reset; builds the goal (own, or by the goal policy) and resets again to the same start."""
        seed = int(rng.integers(2**31 - 1))
        self._rng = rng
        self._reset(seed)
        self._goal_actions = []
        if "goal_image" in self._info:  # the environment supplies its goal
            self._goal_img = resize_frame(np.asarray(self._info["goal_image"]), self.size)
            self._goal_state = self._goal_obs = None
            return self.render()
        self._goal_img = self._goal_state = self._goal_obs = None
        if self.goal_steps:
            scripted = self.task.scripted(self.env, self._info, rng, self.goal_steps) \
                if self.goal_policy == "scripted" else None
            for i in range(self.goal_steps):
                if scripted is None:
                    a = self._goal_action(rng)
                else:  # a scripted policy is a list of actions or a closed loop
                    a = scripted(self) if callable(scripted) else scripted[i]
                self._goal_actions.append(a)
                self.step(a)
            self._goal_img, self._goal_state, self._goal_obs = self.render(), self.task_state(), self.state()
            self._reset(seed)
        return self.render()

    def _goal_action(self, rng: np.random.Generator) -> np.ndarray:
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        if self.goal_policy == "random" or not self._goal_actions:
            a = rng.uniform(low, high) if self.goal_policy == "random" else (low + high) / 2
        else:
            a = np.clip(self._goal_actions[-1] + rng.normal(0, 0.1 * (high - low)), low, high)
        return a.astype(np.float32)

    def step(self, action: np.ndarray) -> np.ndarray:
        action = np.clip(np.asarray(action, dtype=np.float32), self.spec.action_low, self.spec.action_high)
        self._obs, reward, terminated, truncated, self._info = self.env.step(action)
        self.reward = float(reward)
        self._sync()
        self._t += 1
        self.done = bool(terminated or truncated)
        return self.render()

    def render(self) -> np.ndarray:
        frame = np.asarray(self.env.render())
        if frame.ndim != 3 or frame.shape[2] < 3:
            raise VjepaError(f"{self.spec.name}: render() must return an RGB array [H, W, 3]")
        return resize_frame(frame.astype(np.uint8), self.size)

    def state(self) -> np.ndarray | None:
        s = unwrap_angles(flatten_obs(self._obs), self.task.angles)
        return s if s.size else None

    def task_state(self) -> np.ndarray:
        """What the success test compares: e.g. the fingertip, the block pose, else the observation."""
        return self.task.state(self.env, self._obs, self._info)

    # --- the goal -----------------------------------------------------------------------------------------
    def goal_image(self) -> np.ndarray | None:
        """The goal frame uint8 [H, W, 3] (None without goals: collection with goal_steps 0)."""
        return self._goal_img

    def goal_observation(self) -> np.ndarray | None:
        """The goal frame's state [S] (as `state()` reads it; None without a goal built here)."""
        return self._goal_obs

    def distance(self) -> float:
        if "distance" in self._info:
            return float(self._info["distance"])
        if self._goal_state is None:
            raise VjepaError(f"{self.spec.name}: no goal to measure a distance to", "set --goal-steps > 0")
        return self.task.distance(self.task_state(), self._goal_state)

    def success(self) -> bool:
        if "is_success" in self._info and self._goal_state is None:  # own goal, own verdict
            return bool(self._info["is_success"])
        if self.radius <= 0:
            raise VjepaError(f"{self.spec.name}: no success test is known for this environment",
                             "set data.success_radius in the recipe (observation distance)")
        return self.task.solved(self.task_state(), self._goal_state, self.radius) if self._goal_state is not None \
            else self.distance() < self.radius

    @property
    def target(self) -> np.ndarray | None:
        """The environment's own target position where it has one (the built-in simulators), else None."""
        return getattr(self._inner, "target", None)

    @property
    def has_oracle(self) -> bool:
        """A scripted expert, or goal actions to replay (known before the first reset)."""
        return self.goal_steps > 0 or hasattr(self._inner, "oracle_action")

    def oracle_action(self) -> np.ndarray:
        """The replayed goal actions (then the bounds' midpoint), or the environment's own scripted expert."""
        if hasattr(self._inner, "oracle_action") and not self._goal_actions:
            return np.asarray(self._inner.oracle_action(), dtype=np.float32)
        if not self._goal_actions:
            raise VjepaError(f"{self.spec.name}: no scripted policy and no goal actions to replay",
                             "use --policy random, or --goal-steps > 0")
        if self._t < len(self._goal_actions):
            return self._goal_actions[self._t]
        return ((np.asarray(self.spec.action_low) + np.asarray(self.spec.action_high)) / 2).astype(np.float32)

    def close(self) -> None:
        """Close the environment (MuJoCo's renderer complains at exit otherwise)."""
        getattr(self.env, "close", lambda: None)()


def _import_namespace(env_id: str) -> None:
    """Import the package that registers a namespaced id (`gym_pusht/PushT-v0` -> gym_pusht; ours: vjepa)."""
    ns = env_id.split("/")[0] if "/" in env_id else ""
    if ns == "vjepa":
        from vjepa_cli.envs.gymnasium_envs import register_gymnasium
        from vjepa_cli.envs.pusht_relative import register_pusht_relative

        register_gymnasium()
        register_pusht_relative()
    elif ns:
        try:
            importlib.import_module(ns)
        except ImportError:
            pass  # gymnasium.make reports the unknown namespace


def make_gym_env(env_id: str, size: int = 64, goal_steps: int = 0, goal_policy: str = "random",
                 success_radius: float = 0.0, name: str = "") -> GymAdapter:
    """`gymnasium.make(env_id, render_mode="rgb_array")`, wrapped and named `name` (default `gym:<env_id>`);
    a clear error without gymnasium."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering; must precede importing mujoco
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame-rendered environments, no display
    try:
        import gymnasium
    except ImportError:
        raise VjepaError("Gymnasium environments need the optional extra", hint="pip install vjepa-cli[sim]") from None
    _import_namespace(env_id)
    task = task_for(env_id)
    try:
        env = gymnasium.make(env_id, render_mode="rgb_array", **task.make_kwargs(size))
    except Exception as e:  # gymnasium raises many types for unknown ids and missing sub-extras
        raise VjepaError(f"cannot make Gymnasium environment '{env_id}': {e}") from None
    task.setup(env)
    return GymAdapter(env, name=name or f"gym:{env_id}", size=size, task=task, goal_steps=goal_steps,
                      goal_policy=goal_policy, success_radius=success_radius)
