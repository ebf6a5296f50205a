"""The built-in simulators as Gymnasium environments, registered as `vjepa/Reach2D-v0` and `vjepa/Push2D-v0`
(usable from any RL code: `vjepa_cli.envs.gymnasium_envs.register_gymnasium(); gymnasium.make("vjepa/Reach2D-v0",
render_mode="rgb_array")`). Observation = the simulator's state, reward = minus the task distance; `info` holds
`distance`, `is_success` and, after `reset`, the `goal_image`, so `vjepa wm --env gym:vjepa/Reach2D-v0` plans
through the same Gymnasium path as any external environment.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from vjepa_cli.envs.push2d import Push2D
from vjepa_cli.envs.reach2d import Reach2D

IDS = {"vjepa/Reach2D-v0": Reach2D, "vjepa/Push2D-v0": Push2D}


class SimEnv(gymnasium.Env):
    """A built-in simulator (`Reach2D`, `Push2D`) behind the Gymnasium API."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, sim: type = Reach2D, size: int = 64, render_mode: str | None = None):
        self.sim = sim(size=size)
        spec = self.sim.spec
        self.action_space = spaces.Box(np.array(spec.action_low, np.float32), np.array(spec.action_high, np.float32))
        n = len(spec.state_names)
        self.observation_space = spaces.Box(0.0, 1.0, (n,), np.float32)
        self.render_mode = render_mode
        self.action_names, self.state_names = spec.action_names, spec.state_names  # for the adapter's spec

    def _info(self) -> dict:
        return {"distance": self.sim.distance(), "is_success": bool(self.sim.success())}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.sim.reset(self.np_random)
        return self.sim.state().astype(np.float32), {**self._info(), "goal_image": self.sim.goal_image()}

    def step(self, action):
        self.sim.step(np.asarray(action, dtype=np.float32))
        info = self._info()
        return self.sim.state().astype(np.float32), -info["distance"], False, False, info

    def render(self):
        return self.sim.render()

    @property
    def target(self) -> np.ndarray:
        """Where the task wants the effector (reach2d) or the block (push2d)."""
        return self.sim.target

    def oracle_action(self) -> np.ndarray:
        """The simulator's scripted expert (the `oracle` baseline of `wm eval`)."""
        return self.sim.oracle_action()


def register_gymnasium() -> None:
    """Register `vjepa/Reach2D-v0` and `vjepa/Push2D-v0` with Gymnasium (idempotent)."""
    for env_id, sim in IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=SimEnv, kwargs={"sim": sim}, max_episode_steps=200)
