"""PushT (gym-pusht) with relative actions, registered as `vjepa/PushTRelative-v0` (needs `gym-pusht`).

gym-pusht's action is an absolute target for the agent's PD controller in the 512 px arena. DINO-WM (Zhou et
al., 2024) and the PushT variants around it act *relative* to the agent instead: target = agent position +
action. A world model then learns a local effect (the agent moves along the action, as in `push2d`) where an
absolute target asks it to compare the action with every patch's position. Here the action is an offset of at
most `max_offset` px per axis; the target is clipped to the arena and held for `frame_skip` of gym-pusht's
0.1 s control steps (default 1; DINO-WM's PushT skips 5: the PD-controlled agent covers about a quarter of an
offset in one step and nearly all of it in five, which planned worse here, docs/results.md). Observations,
rewards and `info` are gym-pusht's own; so are the frames, except that gym-pusht's cross at the last target is
left out unless `show_target` (the frame shows the scene, as DINO-WM's do).
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

ENV_ID = "vjepa/PushTRelative-v0"
ARENA = 512.0  # gym-pusht's arena side, px


class RelativePushT(gymnasium.ActionWrapper):
    """Offsets [-max_offset, max_offset]^2 (px) -> gym-pusht's absolute agent targets."""

    def __init__(self, env: gymnasium.Env, max_offset: float = 100.0, show_target: bool = False,
                 frame_skip: int = 1):
        super().__init__(env)
        if max_offset <= 0 or frame_skip < 1:
            raise ValueError("max_offset must be > 0 and frame_skip >= 1")
        self.max_offset, self.show_target, self.frame_skip = float(max_offset), show_target, frame_skip
        self.action_space = spaces.Box(-self.max_offset, self.max_offset, (2,), np.float32)

    def agent_position(self) -> np.ndarray:
        return np.asarray(self.env.unwrapped.agent.position, dtype=np.float64)  # (2,) px

    def action(self, action: np.ndarray) -> np.ndarray:
        offset = np.clip(np.asarray(action, np.float64), -self.max_offset, self.max_offset)
        return np.clip(self.agent_position() + offset, 0.0, ARENA).astype(np.float32)

    def step(self, action):
        target = self.action(action)  # fixed for the skipped steps
        for _ in range(self.frame_skip):
            out = self.env.step(target)
            if out[2] or out[3]:  # terminated or truncated
                break
        if not self.show_target:
            self.env.unwrapped._last_action = None  # gym-pusht draws its cross only where this is set
        return out


def make_pusht_relative(render_mode: str | None = "rgb_array", max_offset: float = 100.0, show_target: bool = False,
                        frame_skip: int = 1, **kwargs) -> gymnasium.Env:
    """gym-pusht's PushT-v0 wrapped in `RelativePushT` (the Gymnasium entry point of `ENV_ID`)."""
    import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)

    return RelativePushT(gymnasium.make("gym_pusht/PushT-v0", render_mode=render_mode, **kwargs).unwrapped,
                         max_offset, show_target, frame_skip)


def register_pusht_relative() -> None:
    """Register `vjepa/PushTRelative-v0` with Gymnasium (idempotent; gym-pusht is imported on make)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point=make_pusht_relative, max_episode_steps=300)
