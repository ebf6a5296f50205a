"""Built-in planar simulators, numpy only, rendered to RGB frames with a goal image.

- `reach2d`: a point end-effector in the unit square moves by a bounded displacement per step toward a
  target position; the goal image shows the effector at the target.
- `push2d`: the same effector pushes a square block (box-circle contact, resolved in sub-steps) toward a
  goal position; the world model must predict an object it does not control.

Rendering: the effector is a disk that also lights the floor around it with a linear falloff (a cone of
radius `glow`), so two frames with the effector at different places differ smoothly and a feature-space
L1 energy keeps a slope across the whole arena (a lone small disk gives a flat energy as soon as start
and goal stop overlapping, and the planner nothing to follow). Randomness comes from a
`numpy.random.Generator` passed to `reset`; dynamics are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vjepa_cli.errors import VjepaError

BG = np.array([0.92, 0.92, 0.88], dtype=np.float32)  # background colour (RGB in [0, 1])
AGENT = np.array([0.85, 0.15, 0.10], dtype=np.float32)
BLOCK = np.array([0.10, 0.30, 0.85], dtype=np.float32)


@dataclass(frozen=True)
class EnvSpec:
    """What an episode records about its environment (also written into episode metadata)."""

    name: str  # environment name, e.g. "reach2d"
    action_names: tuple[str, ...]  # one name per action dimension
    action_low: tuple[float, ...]  # per-dimension action bounds
    action_high: tuple[float, ...]
    state_names: tuple[str, ...]  # one name per state dimension (empty = no states)
    fps: float = 10.0  # nominal frame rate recorded with the video
    success_radius: float = 0.05  # task distance below which an episode counts as solved


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(c, c, indexing="xy")  # x to the right, y downward (image rows)


class Reach2D:
    """Point reaching: state = effector (x, y) in [0, 1]^2; action = (dx, dy) in [-max_step, max_step]^2."""

    def __init__(self, size: int = 64, max_step: float = 0.1, radius: float = 0.06, glow: float = 0.9,
                 success_radius: float = 0.05, light: float = 0.6):
        if size < 16:
            raise VjepaError(f"--size {size} is too small", "use at least 16 pixels")
        self.size, self.max_step, self.radius, self.glow, self.light = size, max_step, radius, glow, light
        self.spec = EnvSpec("reach2d", ("dx", "dy"), (-max_step,) * 2, (max_step,) * 2, ("x", "y"),
                            success_radius=success_radius)
        self._xx, self._yy = _coords(size)
        self.agent = np.full(2, 0.5, dtype=np.float32)
        self.target = np.full(2, 0.5, dtype=np.float32)

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
        d = np.sqrt((self._xx - pos[0]) ** 2 + (self._yy - pos[1]) ** 2)
        light = (self.light * np.clip(1 - d / self.glow, 0, 1))[..., None]
        img[:] = img * (1 - light) + AGENT * light
        disk = np.clip((self.radius - d) * self.size + 0.5, 0, 1)[..., None]  # anti-aliased edge
        img[:] = img * (1 - disk) + AGENT * disk

    def _image(self, agent: np.ndarray) -> np.ndarray:
        img = np.broadcast_to(BG, (self.size, self.size, 3)).copy()
        self._paint_agent(img, agent)
        return (img * 255 + 0.5).astype(np.uint8)  # (H, W, 3)

    def render(self) -> np.ndarray:
        return self._image(self.agent)

    def goal_image(self) -> np.ndarray:
        """The frame the task ends in: the effector at the target."""
        return self._image(self.target)


class Push2D(Reach2D):
    """Block pushing: state = (agent x, y, block x, y); the task distance is block to goal."""

    def __init__(self, size: int = 64, max_step: float = 0.1, radius: float = 0.06, glow: float = 0.9,
                 half: float = 0.08, success_radius: float = 0.06, substeps: int = 4, light: float = 0.6):
        super().__init__(size, max_step, radius, glow, success_radius, light)
        self.half, self.substeps = half, substeps
        self.spec = EnvSpec("push2d", ("dx", "dy"), (-max_step,) * 2, (max_step,) * 2,
                            ("agent_x", "agent_y", "block_x", "block_y"), success_radius=success_radius)
        self.block = np.full(2, 0.5, dtype=np.float32)

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
        img = np.broadcast_to(BG, (self.size, self.size, 3)).copy()
        inside = (np.abs(self._xx - block[0]) < self.half) & (np.abs(self._yy - block[1]) < self.half)
        img[inside] = BLOCK
        self._paint_agent(img, agent)
        return (img * 255 + 0.5).astype(np.uint8)

    def render(self) -> np.ndarray:
        return self._image(self.agent, self.block)

    def goal_image(self) -> np.ndarray:
        """The block on the goal, the effector right behind it (where a straight push ends)."""
        return self._image(self._behind(self.target), self.target)


ENVS = {"reach2d": Reach2D, "push2d": Push2D}


def make_env(name: str, size: int = 64):
    """A built-in environment by name, or `gym:<id>` through the optional Gymnasium adapter."""
    if name.startswith("gym:"):
        from vjepa_cli.envs.gym import make_gym_env

        return make_gym_env(name[4:], size=size)
    if name not in ENVS:
        raise VjepaError(f"unknown environment '{name}'", "use reach2d, push2d or gym:<Gymnasium id>")
    return ENVS[name](size=size)
