"""Collect episodes from Gymnasium environments (optional extra: `pip install vjepa-cli[gym]`).

Any environment made with `render_mode="rgb_array"` and a `Box` action space works: frames come from
`env.render()`, resized to a square `size`, and a 1-D `Box` observation is recorded as the state.
Gymnasium has no goal images, so such episodes serve `wm collect` and `wm train`, not `wm eval`.
"""

from __future__ import annotations

import numpy as np

from vjepa_cli.envs.base import EnvSpec
from vjepa_cli.errors import VjepaError


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of [H, W, 3] uint8 to [size, size, 3] (no extra dependency)."""
    h, w = frame.shape[:2]
    rows = (np.arange(size) * h // size).clip(0, h - 1)
    cols = (np.arange(size) * w // size).clip(0, w - 1)
    return np.ascontiguousarray(frame[rows][:, cols, :3])


class GymAdapter:
    """Wrap a Gymnasium-API environment object into the built-in environment interface."""

    def __init__(self, env, name: str = "gym", size: int = 64):
        space = env.action_space
        low, high = getattr(space, "low", None), getattr(space, "high", None)
        if low is None or high is None or np.asarray(low).ndim != 1:
            raise VjepaError(f"{name}: the action space must be a 1-D Box", "discrete actions are not supported")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise VjepaError(f"{name}: the action space bounds must be finite")
        if getattr(env, "render_mode", None) != "rgb_array":
            raise VjepaError(f"{name}: the environment must be made with render_mode='rgb_array'")
        obs_space = env.observation_space
        shape = getattr(obs_space, "shape", None)
        self._has_state = shape is not None and len(shape) == 1
        states = tuple(f"obs{i}" for i in range(shape[0])) if self._has_state else ()
        a = len(low)
        self.env, self.size, self._obs, self.done = env, size, None, False
        self.spec = EnvSpec(name, tuple(f"a{i}" for i in range(a)), tuple(float(x) for x in low),
                            tuple(float(x) for x in high), states, fps=float(env.metadata.get("render_fps", 10)))

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        self._obs, _ = self.env.reset(seed=int(rng.integers(2**31 - 1)))
        self.done = False
        return self.render()

    def step(self, action: np.ndarray) -> np.ndarray:
        action = np.clip(np.asarray(action, dtype=np.float32), self.spec.action_low, self.spec.action_high)
        self._obs, _, terminated, truncated, _ = self.env.step(action)
        self.done = bool(terminated or truncated)
        return self.render()

    def render(self) -> np.ndarray:
        frame = np.asarray(self.env.render())
        if frame.ndim != 3 or frame.shape[2] < 3:
            raise VjepaError(f"{self.spec.name}: render() must return an RGB array [H, W, 3]")
        return _resize(frame.astype(np.uint8), self.size)

    def state(self) -> np.ndarray | None:
        return np.asarray(self._obs, dtype=np.float32).reshape(-1) if self._has_state else None

    def oracle_action(self) -> np.ndarray:
        raise VjepaError(f"{self.spec.name}: no scripted policy for Gymnasium environments", "use --policy random")


def make_gym_env(env_id: str, size: int = 64) -> GymAdapter:
    """`gymnasium.make(env_id, render_mode="rgb_array")`, wrapped; a clear error without gymnasium."""
    try:
        import gymnasium
    except ImportError:
        raise VjepaError("Gymnasium environments need the optional extra",
                         hint="pip install vjepa-cli[gym]") from None
    try:
        env = gymnasium.make(env_id, render_mode="rgb_array")
    except Exception as e:  # gymnasium raises many types for unknown ids and missing sub-extras
        raise VjepaError(f"cannot make Gymnasium environment '{env_id}': {e}") from None
    return GymAdapter(env, name=f"gym:{env_id}", size=size)
