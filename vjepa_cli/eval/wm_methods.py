"""The methods `vjepa wm eval` compares, each a function that runs one episode on a reset environment.

A planned method is named `<planner>[+prior][+reward|+reward-only][+state|+state-only]`: the planner (`cem`,
`mppi`, `gd`), seeded by the learned policy head (`+prior`: the plan starts from its action, which blends into the
executed action by `plan.prior_weight`), with the learned reward added to the goal-image energy (`+reward`) or
alone (`+reward-only`), and the state probe's distance to the goal image's probed state added (`+state`) or alone
(`+state-only`); the goal's state comes from the state probe or the goal reader (`plan.goal_state_from`,
`GoalState`). Baselines: random actions, the oracle (the scripted expert, or the replayed goal actions),
and `policy`, the learned policy head on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from vjepa_cli.config.wm import WMPlanConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.world_model import PlanContext, Predicted, WorldModel
from vjepa_cli.plan.base import EnergyFn, energy_l1, over_horizon
from vjepa_cli.plan.mpc import MPC, EpisodeLog, run_mpc_episode, run_policy_episode
from vjepa_cli.plan.registry import PLANNERS, make_planner

MODIFIERS = ("prior", "reward", "reward-only", "state", "state-only")
Runner = Callable[[Any], EpisodeLog]  # reset environment -> episode log


def method_label(spec: str) -> str:
    """`cem+prior` -> `world model (CEM+prior)`: the row name of a planned method."""
    planner, *mods = spec.split("+")
    return f"world model ({'+'.join([planner.upper(), *mods])})"


class LearnedPrior:
    """The policy head as a `PolicyPrior`: (frame, goal image) -> action [A]; the goal is encoded once."""

    def __init__(self, wm: WorldModel):
        if wm.policy_head is None:
            raise VjepaError("this world model has no policy head", "train it with --set heads.policy=true")
        self.wm, self._goal_key, self._z_goal = wm, None, None

    @torch.no_grad()
    def __call__(self, frame: np.ndarray, goal: np.ndarray) -> np.ndarray:
        if self._goal_key is None or not np.array_equal(self._goal_key, goal):
            self._goal_key, self._z_goal = goal.copy(), self.wm.encode(goal[None])  # (1, N, D)
        z = self.wm.encode(frame[None])  # (1, N, D)
        return self.wm.policy_head(z, self._z_goal)[0].cpu().numpy()


class GoalState:
    """The goal's standardised state [K] that the state distance compares planned states with: the state probe's
    reading of the goal features (`source="probe"`), or the goal reader's reading of the goal image's pixels
    (`"reader"`), which `set_image` takes once per goal."""

    def __init__(self, wm: WorldModel, source: str = "probe"):
        if source == "reader":
            if wm.goal_reader is None:
                raise VjepaError("plan.goal_state_from=reader needs a world model with a goal reader",
                                 "train one with --set heads.goal_reader=true (it learns from data.probe_resets), "
                                 "or set plan.goal_state_from=probe")
            if wm.state_head is not None and not set(wm.state_head.cfg.dims) <= set(wm.goal_reader.cfg.dims):
                raise VjepaError(f"the goal reader reads state entries {list(wm.goal_reader.cfg.dims)}, the state "
                                 f"probe compares {list(wm.state_head.cfg.dims)}", "set plan.goal_state_from=probe")
        self.wm, self.source, self._read = wm, source, None

    def set_image(self, image: np.ndarray) -> None:
        """The goal image uint8 [H, W, 3] of the episode (or plan) to come; read now when the reader reads it."""
        if self.source == "reader" and self.wm.state_head is not None:
            state = self.wm.goal_reader.read(image)  # (K',) in the states' own units
            self._read = self.wm.state_head.standardise(state, self.wm.goal_reader.cfg.dims)  # (K,)

    def __call__(self, z_goal: torch.Tensor) -> torch.Tensor:
        """Goal features [N, D] -> the goal's standardised state [K]."""
        if self.source == "probe":
            return self.wm.state_head(z_goal.unsqueeze(0))[0]
        if self._read is None:
            raise RuntimeError("GoalState: set_image(goal image) before planning toward it")
        return self._read


def blended_energy(wm: WorldModel, mode: str, goal_weight: float, reward_weight: float = 0.0,
                   state_weight: float = 0.0, rest_weight: float = 0.0,
                   state_weights: Sequence[float] = (), goal_state: GoalState | None = None) -> EnergyFn:
    """goal_weight * L1 goal energy - reward_weight * (learned reward summed over the horizon)
    + state_weight * (distance of the probed states to the goal image's), each reduced over the horizon by
    `mode` (see `over_horizon`), + rest_weight * (how far the probed state moves over the last planned step:
    a plan that arrives at rest, not one that swings through the goal). `state_weights` weigh the state
    distance's entries (one per entry the state probe reads; () = all 1); `goal_state` reads the goal's state
    (None = the state probe on the goal features)."""
    if reward_weight and wm.reward_head is None:
        raise VjepaError("this world model has no reward head", "train it with --set heads.reward=true")
    if (state_weight or rest_weight) and wm.state_head is None:
        raise VjepaError("this world model has no state head", "train it with --set heads.state=true")
    w = None  # (K,) on the head's device
    if state_weight and state_weights:
        k = len(wm.state_head.cfg.dims)
        if len(state_weights) != k:
            raise VjepaError(f"plan.state_weights has {len(state_weights)} entries, the state probe reads {k}",
                             f"give one weight per entry ({k}), or leave plan.state_weights empty")
        w = torch.tensor(state_weights, dtype=torch.float32, device=wm.state_head.mean.device)
    goal_state = goal_state or GoalState(wm)

    def energy(pred: torch.Tensor | Predicted, z_goal: torch.Tensor) -> torch.Tensor:  # pred (S, H, N, D) -> (S,)
        states = None  # the predictor's own states (S, H, S_dim), from `WorldModel.rollout_states`
        if isinstance(pred, Predicted):
            pred, states = pred
        e = torch.zeros(pred.shape[0], device=pred.device)
        if goal_weight:
            e = e + goal_weight * energy_l1(pred, z_goal, mode)
        if reward_weight:
            e = e - reward_weight * wm.reward_head(pred).sum(1)
        if state_weight or rest_weight:  # standardised states of the planned steps (S, H, K)
            probed = (wm.state_head(pred) if states is None
                      else wm.state_head.standardise(states, tuple(wm.predictor.cfg.state_dims)))
        if state_weight:
            d = wm.state_head.gap(probed, goal_state(z_goal), w)  # (S, H)
            e = e + state_weight * over_horizon(d, mode)
        if rest_weight:
            if pred.shape[1] < 2:
                raise VjepaError("plan.rest_weight needs a planning horizon of at least 2 steps",
                                 "raise the planner's horizon or set plan.rest_weight=0")
            e = e + rest_weight * (probed[:, -1] - probed[:, -2]).norm(dim=-1)
        return e

    return energy


def plan_energy(wm: WorldModel, plan: WMPlanConfig, mode: str, mods: Sequence[str] = (),
                goal: GoalState | None = None) -> EnergyFn | None:
    """The energy of the plan settings' weights (`goal_weight`, `reward_weight`, `state_weight`) as changed by the
    method's modifiers, the goal's state read by `goal` (None = the state probe); None = the L1 goal energy as it
    is."""
    goal_w, reward_w, state_w, rest_w = plan.goal_weight, plan.reward_weight, plan.state_weight, plan.rest_weight
    if "reward" in mods or "reward-only" in mods:
        reward_w = reward_w or 1.0
    if "state" in mods or "state-only" in mods:
        state_w = state_w or 1.0
    if "reward-only" in mods or "state-only" in mods:
        goal_w = 0.0
    if goal_w == 1.0 and not reward_w and not state_w and not rest_w and plan.state_from == "probe":
        return None
    return blended_energy(wm, mode, goal_w, reward_w, state_w, rest_w, plan.state_weights, goal)


def plan_rollout(wm: WorldModel, plan: WMPlanConfig) -> Callable[[Any, torch.Tensor], Any]:
    """The rollout the planner calls: predicted features, or with `plan.state_from=predictor` features and the
    predictor's own states (`Predicted`, which `plan_energy`'s energy reads)."""
    if plan.state_from == "predictor":
        pcfg = wm.predictor.cfg
        if not pcfg.predict_states:
            raise VjepaError("plan.state_from=predictor needs a world model that predicts states",
                             "train it with --set predictor.predict_states=true, or set plan.state_from=probe")
        if wm.state_head is not None and pcfg.state_dims and not set(wm.state_head.cfg.dims) <= set(pcfg.state_dims):
            raise VjepaError(f"plan.state_from=predictor: the state probe reads entries {list(wm.state_head.cfg.dims)}"
                             f" of the state, the predictor predicts only {list(pcfg.state_dims)}",
                             "set plan.state_from=probe")
        return wm.rollout_states
    return wm.rollout


def planned_method(wm: WorldModel, plan: WMPlanConfig, spec: str, seed: int) -> Runner:
    """MPC with the world model for a method spec (see the module docstring)."""
    method, *mods = spec.split("+")
    if method not in PLANNERS or any(m not in MODIFIERS for m in mods):
        raise VjepaError(f"unknown planning method '{spec}'",
                         f"use <{'|'.join(PLANNERS)}>[+prior][+reward|+reward-only][+state|+state-only], "
                         "e.g. cem+prior")
    plan = replace(plan, method=method)
    cfg = plan.planner_for(wm.action_low, wm.action_high)
    goal = GoalState(wm, plan.goal_state_from)
    energy_fn = plan_energy(wm, plan, cfg.energy, mods, goal)
    planner = make_planner(method, plan_rollout(wm, plan), cfg, energy_fn)
    prior = LearnedPrior(wm) if ("prior" in mods or plan.prior) else None
    gen = torch.Generator(device=wm.device).manual_seed(seed)

    def encode(frame: np.ndarray) -> torch.Tensor:
        return wm.encode(frame[None])[0]  # (N, D)

    def mpc(z_goal: torch.Tensor) -> MPC:
        return MPC(planner, z_goal, gen, prior_weight=plan.prior_weight, context=plan.context,
                   make_context=PlanContext)

    states = bool(wm.predictor.cfg.state_dim)  # the model reads the observed state with each frame

    def run(env: Any) -> EpisodeLog:
        goal.set_image(env.goal_image())  # the goal reader reads it once
        return run_mpc_episode(env, encode, mpc, plan.max_steps, prior=prior, states=states)

    return run


def baselines(wm: WorldModel, plan: WMPlanConfig, seed: int, oracle: bool) -> dict[str, Runner]:
    """random, oracle (when the environment has one) and policy (when the model has a policy head)."""
    rng = np.random.default_rng(seed + 1)
    low, high = np.asarray(wm.action_low), np.asarray(wm.action_high)
    out = {"random": lambda env: run_policy_episode(env, lambda e: rng.uniform(low, high), plan.max_steps)}
    if oracle:
        out["oracle"] = lambda env: run_policy_episode(env, lambda e: e.oracle_action(), plan.max_steps)
    if wm.policy_head is not None:
        prior = LearnedPrior(wm)
        out["policy"] = lambda env: run_policy_episode(env, lambda e: prior(e.render(), e.goal_image()),
                                                       plan.max_steps)
    return out
