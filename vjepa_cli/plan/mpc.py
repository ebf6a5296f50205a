"""Model-predictive control with a world model: plan, execute the first action, observe, re-plan.

As in V-JEPA 2-AC (Assran et al., 2025, sec. 4): the goal is an image, the energy is the L1 distance
between predicted and goal features. Any `Planner` (CEM today) does the search. A `PolicyPrior` (e.g. a
vision-language-action model) may propose an action: the search starts from it, and the executed action
can blend the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from vjepa_cli.plan.base import Planner, PlanResult


class PolicyPrior(Protocol):
    """Proposes an action [A] for the current frame and goal image (both uint8 [H, W, 3])."""

    def __call__(self, frame: np.ndarray, goal: np.ndarray) -> np.ndarray: ...


@dataclass
class MPC:
    """Plans one action at a time toward fixed goal features, warm-starting from the previous plan."""

    planner: Planner  # the search (e.g. CEMPlanner); its bounds clip the executed action
    z_goal: torch.Tensor  # (N, D) goal features
    generator: torch.Generator  # the planner's random source, shared across steps
    prior_weight: float = 0.0  # executed = (1 - w) * plan[0] + w * prior
    warm_start: bool = True  # start the next search from this plan shifted by one step
    context: int = 1  # observed frames a plan starts from (> 1: `make_context` of the recent frames and actions)
    # (z [T0, N, D], a [T0-1, A], states [T0, S] | None) -> the planner's start (e.g. a PlanContext)
    make_context: Callable[..., Any] | None = None
    _prev: torch.Tensor | None = field(default=None, repr=False)  # (H, A) the last plan
    _seen: list[torch.Tensor] = field(default_factory=list, repr=False)  # recent frames' features, (N, D) each
    _done: list[torch.Tensor] = field(default_factory=list, repr=False)  # actions executed after them, (A,) each
    _states: list[torch.Tensor] = field(default_factory=list, repr=False)  # their observed states, (S,) each

    def _start(self, z: torch.Tensor, state: torch.Tensor | None) -> Any:
        """The planner's start: z itself, or the context of the last `context` frames ending with z (with their
        states when the current one is given)."""
        if state is None and (self.context <= 1 or not self._seen):
            return z
        if self.make_context is None:
            raise ValueError("context > 1 or states need make_context (e.g. vjepa_cli.models.world_model.PlanContext)")
        k = min(self.context - 1, len(self._seen))
        frames = torch.stack([*self._seen[len(self._seen) - k:], z])  # (T0, N, D)
        actions = torch.stack(self._done[len(self._done) - k:]) if k else z.new_zeros(0, len(self.planner.low))
        if state is None:
            return self.make_context(frames, actions)
        return self.make_context(frames, actions, torch.stack([*self._states[len(self._states) - k:], state]))

    def act(self, z: torch.Tensor, prior_action: np.ndarray | None = None,
            state: np.ndarray | None = None) -> tuple[np.ndarray, PlanResult, float]:
        """`state`: the observed state [S] for a model that reads states. -> (action to execute [A], the plan,
        planning seconds)."""
        s = None if state is None else torch.as_tensor(state, dtype=torch.float32, device=z.device)
        init = None
        if prior_action is not None:
            init = torch.as_tensor(prior_action, dtype=torch.float32, device=self.z_goal.device)
        elif self.warm_start and self._prev is not None:
            init = torch.cat([self._prev[1:], self._prev[-1:]])  # (H, A) shifted by one step
        t0 = time.perf_counter()
        res = self.planner.plan(self._start(z, s), self.z_goal, self.generator, init_mean=init)
        dt = time.perf_counter() - t0
        self._prev = res.actions
        a = res.actions[0].cpu().numpy()
        if prior_action is not None and self.prior_weight > 0:
            a = (1 - self.prior_weight) * a + self.prior_weight * np.asarray(prior_action, dtype=np.float32)
        a = np.clip(a, self.planner.low, self.planner.high).astype(np.float32)
        if self.context > 1:  # remember what the next plan's context needs
            self._seen, self._done = self._seen[-self.context:] + [z], self._done[-self.context:] + [
                torch.as_tensor(a, device=z.device)]
            if s is not None:
                self._states = self._states[-self.context:] + [s]
        return a, res, dt


@dataclass
class EpisodeLog:
    """One closed-loop episode."""

    frames: list[np.ndarray]  # observed frames, first to last
    goal: np.ndarray  # goal image
    distances: list[float]  # task distance after each frame
    success: bool
    steps: int  # actions executed
    plan_seconds: list[float] = field(default_factory=list)  # per planned action
    confidences: list[float] = field(default_factory=list)  # per plan


def run_mpc_episode(env, encode, mpc_factory, max_steps: int, prior: PolicyPrior | None = None,
                    states: bool = False) -> EpisodeLog:
    """Closed loop on an already reset `env`: encode the frame, plan, step, until success or `max_steps`.

    `encode(frame [H, W, 3]) -> [N, D]`; `mpc_factory(z_goal) -> MPC`; `states`: give the planner the
    observed state `env.state()` with each frame (a world model that reads states).
    """
    frame, goal = env.render(), env.goal_image()
    mpc = mpc_factory(encode(goal))
    log = EpisodeLog([frame], goal, [env.distance()], env.success(), 0)
    while not log.success and log.steps < max_steps:
        prior_a = prior(frame, goal) if prior is not None else None
        a, res, dt = mpc.act(encode(frame), prior_a, env.state() if states else None)
        frame = env.step(a)
        log.frames.append(frame)
        log.distances.append(env.distance())
        log.plan_seconds.append(dt)
        log.confidences.append(res.confidence)
        log.steps += 1
        log.success = env.success()
    return log


def run_policy_episode(env, policy, max_steps: int) -> EpisodeLog:
    """Closed loop with a plain policy `policy(env) -> action` (random baseline, scripted oracle)."""
    log = EpisodeLog([env.render()], env.goal_image(), [env.distance()], env.success(), 0)
    while not log.success and log.steps < max_steps:
        log.frames.append(env.step(policy(env)))
        log.distances.append(env.distance())
        log.steps += 1
        log.success = env.success()
    return log
