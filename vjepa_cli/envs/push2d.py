"""`push2d`: the reach2d effector pushes a square block (box-circle contact, resolved in sub-steps) toward a
goal position; the world model must predict an object it does not control.

Rendered so that the block is what the image is about (docs/results.md, "Why push2d fails"): the block lights
the floor around it (a wide cone, `block_glow`/`block_light`) and the effector is a faint disk (`alpha`) over a
weaker cone of its own. A goal-image energy on these frames follows the block first and still has a smooth
slope toward the effector's place (a solid small disk crossing 16 px patches leaves bumps a planner sticks in).
The goal image shows the block on its goal and the effector where the push starts, behind the block's start
position (success counts the block only): its energy leads the effector behind the block before the push.
"""

from __future__ import annotations

import numpy as np

from vjepa_cli.envs.base import EnvSpec
from vjepa_cli.envs.reach2d import Reach2D
from vjepa_cli.envs.render import AGENT, BLOCK, canvas, paint_box, paint_disk, paint_glow, to_uint8


class Push2D(Reach2D):
    """Block pushing: state = (agent x, y, block x, y); the task distance is block to goal."""

    def __init__(self, size: int = 64, max_step: float = 0.1, radius: float = 0.06, glow: float = 0.9,
                 half: float = 0.08, success_radius: float = 0.06, substeps: int = 4, light: float = 0.4,
                 block_glow: float = 0.9, block_light: float = 0.8, alpha: float = 0.3):
        super().__init__(size, max_step, radius, glow, success_radius, light)
        self.half, self.substeps = half, substeps  # block half side; contact sub-steps per action
        self.block_glow, self.block_light = block_glow, block_light  # the block's lit cone (radius, strength)
        self.alpha = alpha  # opacity of the effector's disk
        self.push_start = np.full(2, 0.5, dtype=np.float32)  # behind the block's start, facing the goal
        self.spec = EnvSpec("push2d", ("dx", "dy"), (-max_step,) * 2, (max_step,) * 2,
                            ("agent_x", "agent_y", "block_x", "block_y"), success_radius=success_radius)
        self.block = np.full(2, 0.5, dtype=np.float32)  # block centre (x, y)

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Block near the centre, goal 0.15-0.3 away, effector anywhere not touching the block."""
        self.block = rng.uniform(0.3, 0.7, 2).astype(np.float32)
        while True:
            ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.3)
            self.target = (self.block + dist * np.array([np.cos(ang), np.sin(ang)])).astype(np.float32)
            if np.all((self.target > 0.15) & (self.target < 0.85)):
                break
        while True:
            self.agent = rng.uniform(0.08, 0.92, 2).astype(np.float32)
            if np.abs(self.agent - self.block).max() > self.half + self.radius + 0.02:
                break
        self.push_start = self._behind(self.block)
        return self.render()

    def step(self, action: np.ndarray) -> np.ndarray:
        delta = self.clip_action(action) / self.substeps
        lim = (self.half, 1.0 - self.half)
        for _ in range(self.substeps):
            self.agent = np.clip(self.agent + delta, 0.0, 1.0).astype(np.float32)
            push = self._penetration(self.agent, self.block)
            if push is not None:
                self.block = np.clip(self.block + push, *lim).astype(np.float32)
                back = self._penetration(self.agent, self.block)  # block stuck at a wall: the effector stops
                if back is not None:
                    self.agent = (self.agent - back).astype(np.float32)
        return self.render()

    def _penetration(self, agent: np.ndarray, block: np.ndarray) -> np.ndarray | None:
        """Displacement that moves the block out of the effector's disk, or None without contact."""
        closest = np.clip(agent, block - self.half, block + self.half)
        d = closest - agent
        n = float(np.linalg.norm(d))
        if n >= self.radius:
            return None
        if n < 1e-6:  # effector centre inside the block: push away from the centre
            d, n = block - agent, float(np.linalg.norm(block - agent)) + 1e-6
            return (d / n * (self.radius + self.half - n)).astype(np.float32)
        return (d / n * (self.radius - n)).astype(np.float32)

    def state(self) -> np.ndarray:
        return np.concatenate([self.agent, self.block])

    def distance(self) -> float:
        return float(np.linalg.norm(self.block - self.target))

    def _behind(self, block: np.ndarray) -> np.ndarray:
        u = self.target - block
        u = u / (np.linalg.norm(u) + 1e-8)
        return (block - u * (self.half + self.radius + 0.01)).astype(np.float32)

    def oracle_action(self) -> np.ndarray:
        """Scripted expert: go around to behind the block, then push it straight to the goal."""
        u = self.target - self.block
        u = u / (np.linalg.norm(u) + 1e-8)
        rel = self.agent - self.block
        behind = self._behind(self.block)
        if np.linalg.norm(self.agent - behind) < 0.03 or (np.dot(rel, u) < 0 and abs(u[0] * rel[1] - u[1] * rel[0]) < self.half):
            return self._toward(self.agent, self.target - u * (self.half + self.radius - 0.005))
        if np.dot(rel, u) > -self.half:  # on the wrong side: first step around the block sideways
            perp = np.array([-u[1], u[0]], dtype=np.float32)
            side = perp if np.dot(rel, perp) >= 0 else -perp
            clear = self.half * 1.5 + self.radius + 0.03
            return self._toward(self.agent, self.block + side * clear - u * (self.half + self.radius))
        return self._toward(self.agent, behind)

    def _image(self, agent: np.ndarray, block: np.ndarray | None = None) -> np.ndarray:
        block = self.block if block is None else block
        img = canvas(self.size)
        paint_glow(img, self._xx, self._yy, block, BLOCK, self.block_glow, self.block_light)
        paint_glow(img, self._xx, self._yy, agent, AGENT, self.glow, self.light)
        paint_box(img, self._xx, self._yy, block, self.half, BLOCK)
        paint_disk(img, self._xx, self._yy, agent, AGENT, self.radius, self.alpha)
        return to_uint8(img)  # (H, W, 3)

    def render(self) -> np.ndarray:
        return self._image(self.agent, self.block)

    def goal_image(self) -> np.ndarray:
        """The block on the goal, the effector where the push starts (see the module docstring)."""
        return self._image(self.goal_agent(), self.target)

    def goal_agent(self) -> np.ndarray:
        """Where the goal image shows the effector: where the push starts (behind the block's start)."""
        return self.push_start.copy()
