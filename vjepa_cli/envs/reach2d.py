"""`reach2d`: a point end-effector in the unit square moves by a bounded displacement per step toward a
target position; the goal image shows the effector at the target. Numpy only; randomness comes from the
`numpy.random.Generator` passed to `reset`, dynamics are deterministic."""

from __future__ import annotations

import numpy as np

from vjepa_cli.envs.base import EnvSpec
from vjepa_cli.envs.render import AGENT, canvas, coords, paint_lit_disk, to_uint8
from vjepa_cli.errors import VjepaError


class Reach2D:
    """Point reaching: state = effector (x, y) in [0, 1]^2; action = (dx, dy) in [-max_step, max_step]^2."""

    def __init__(self, size: int = 64, max_step: float = 0.1, radius: float = 0.06, glow: float = 0.9,
                 success_radius: float = 0.05, light: float = 0.6):
        if size < 16:
            raise VjepaError(f"--size {size} is too small", "use at least 16 pixels")
        self.size, self.max_step, self.radius, self.glow, self.light = size, max_step, radius, glow, light
        self.spec = EnvSpec("reach2d", ("dx", "dy"), (-max_step,) * 2, (max_step,) * 2, ("x", "y"),
                            success_radius=success_radius)
        self._xx, self._yy = coords(size)
        self.agent = np.full(2, 0.5, dtype=np.float32)  # effector (x, y)
        self.target = np.full(2, 0.5, dtype=np.float32)  # where the task wants it

    # --- dynamics -------------------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Random start and target at least 0.3 apart; returns the first frame [H, W, 3] uint8."""
        lo, hi = 0.1, 0.9
        self.agent = rng.uniform(lo, hi, 2).astype(np.float32)
        while True:
            self.target = rng.uniform(lo, hi, 2).astype(np.float32)
            if np.linalg.norm(self.target - self.agent) >= 0.3:
                break
        return self.render()

    def clip_action(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float32), self.spec.action_low, self.spec.action_high)

    def step(self, action: np.ndarray) -> np.ndarray:
        self.agent = np.clip(self.agent + self.clip_action(action), 0.0, 1.0).astype(np.float32)
        return self.render()

    def state(self) -> np.ndarray:
        return self.agent.copy()

    def distance(self) -> float:
        """Task distance: effector to target."""
        return float(np.linalg.norm(self.agent - self.target))

    def success(self) -> bool:
        return self.distance() < self.spec.success_radius

    def oracle_action(self) -> np.ndarray:
        """Scripted expert: the largest allowed step straight toward the target."""
        return self._toward(self.agent, self.target)

    def _toward(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        d = q - p
        n = float(np.abs(d).max())
        return (d if n <= self.max_step else d * (self.max_step / n)).astype(np.float32)

    # --- rendering ------------------------------------------------------------------------------------
    def _paint_agent(self, img: np.ndarray, pos: np.ndarray) -> None:
        paint_lit_disk(img, self._xx, self._yy, pos, AGENT, self.radius, self.glow, self.light)

    def _image(self, agent: np.ndarray) -> np.ndarray:
        img = canvas(self.size)
        self._paint_agent(img, agent)
        return to_uint8(img)  # (H, W, 3)

    def render(self) -> np.ndarray:
        return self._image(self.agent)

    def goal_image(self) -> np.ndarray:
        """The frame the task ends in: the effector at the target."""
        return self._image(self.target)
