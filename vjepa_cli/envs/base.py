"""What an environment is to `vjepa wm`: an `EnvSpec` (action and state layout) and the methods collection
and planning evaluation call. Built-in simulators and the Gymnasium adapter implement these protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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


class Env(Protocol):
    """What `vjepa wm collect` needs: frames are uint8 [H, W, 3]; randomness comes from the `rng` of `reset`."""

    spec: EnvSpec

    def reset(self, rng: np.random.Generator) -> np.ndarray: ...  # -> first frame
    def step(self, action: np.ndarray) -> np.ndarray: ...  # action [A] -> next frame
    def render(self) -> np.ndarray: ...  # the current frame
    def state(self) -> np.ndarray | None: ...  # [S] float32, or None without states
    def oracle_action(self) -> np.ndarray: ...  # scripted expert's action [A] (for the "noisy" policy)


class GoalEnv(Env, Protocol):
    """An environment with a goal image and a task distance: what `vjepa wm eval` plans in."""

    def goal_image(self) -> np.ndarray: ...  # the frame the solved task ends in, uint8 [H, W, 3]
    def distance(self) -> float: ...  # task distance (0 = solved exactly)
    def success(self) -> bool: ...  # distance below the spec's success radius
