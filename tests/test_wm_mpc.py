"""MPC loop, policy prior and the planner interface, with a toy point-mass world model whose features are the
position; the plan settings of world-model recipes and files, in the nested and the old flat spelling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vjepa_cli.config import from_dict, load_recipe, to_dict
from vjepa_cli.config.plan import CEMConfig
from vjepa_cli.config.wm import WMConfig, WMPlanConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.plan import MPC, CEMPlanner, Planner, PlanResult, cem_plan
from vjepa_cli.plan.mpc import run_mpc_episode, run_policy_episode


class PointEnv:
    """A 2-D point; the 'frame' is its position (float array), goal at (0.8, -0.6)."""

    def __init__(self):
        self.p, self.target = np.zeros(2, np.float32), np.array([0.8, -0.6], np.float32)

    def render(self):
        return self.p.copy()

    def goal_image(self):
        return self.target.copy()

    def step(self, a):
        self.p = self.p + np.clip(a, -0.2, 0.2)
        return self.render()

    def distance(self):
        return float(np.linalg.norm(self.p - self.target))

    def success(self):
        return self.distance() < 0.05

    def oracle_action(self):
        return np.clip(self.target - self.p, -0.2, 0.2)


def _encode(frame):
    return torch.as_tensor(frame, dtype=torch.float32).view(1, 2)  # (N=1, D=2)


def _rollout(z0, actions):  # exact model: (S, H, 2) -> (S, H, 1, 2)
    return (z0 + actions.cumsum(1)).unsqueeze(2)


def _cem(**kw) -> CEMConfig:
    plan = WMPlanConfig(cem=CEMConfig(**{"horizon": 2, "samples": 64, "topk": 8, "iterations": 4, **kw}))
    return plan.cem_for((-0.2, -0.2), (0.2, 0.2))


def _mpc(cfg: CEMConfig, z_goal, gen, **kw) -> MPC:
    return MPC(CEMPlanner(_rollout, cfg), z_goal, gen, **kw)


@pytest.mark.parametrize("energy,max_steps", [("sum", 7), ("final", 20)])
def test_mpc_reaches_goal_with_exact_model(energy, max_steps):
    # "sum" rewards being close at every step (greedy first action); "final" only constrains a1 + a2, so the
    # executed first action is one of many optimal splits and MPC may take a detour
    env, gen = PointEnv(), torch.Generator().manual_seed(0)
    log = run_mpc_episode(env, _encode, lambda zg: _mpc(_cem(energy=energy), zg, gen), max_steps=max_steps)
    assert log.success
    assert len(log.frames) == log.steps + 1 and len(log.plan_seconds) == log.steps
    assert all(0 < c <= 1 for c in log.confidences)
    assert log.distances[-1] < 0.05 < log.distances[0]
    oracle = run_policy_episode(PointEnv(), lambda e: e.oracle_action(), max_steps=15)
    assert oracle.success and oracle.steps == 4  # 0.8 along x at 0.2 per step


def test_policy_prior_blend_and_start():
    z, zg = torch.zeros(1, 2), torch.tensor([[0.8, -0.6]])
    prior = np.array([-0.2, 0.2], np.float32)  # points away from the goal
    # tiny CEM (1 iteration, tiny std): the plan stays at the prior, proving the mean starts from it
    cfg = replace(_cem(iterations=1), init_std=(1e-4, 1e-4), momentum_mean=0.0)
    a, res, _ = _mpc(cfg, zg, torch.Generator().manual_seed(0)).act(z, prior)
    assert np.allclose(res.actions[0].numpy(), prior, atol=1e-3)
    # a real CEM from the prior: the plan heads to the goal; executed = 0.75 * plan + 0.25 * prior
    mpc = _mpc(_cem(iterations=6), zg, torch.Generator().manual_seed(0), prior_weight=0.25)
    a, res, _ = mpc.act(z, prior)
    plan0 = res.actions[0].numpy()
    assert plan0[0] > 0.1 and plan0[1] < -0.1
    assert np.allclose(a, 0.75 * plan0 + 0.25 * prior, atol=1e-6)


def test_warm_start_shifts_previous_plan():
    seen = []

    def rollout(z0, actions):
        seen.append(actions[0].clone())  # sample 0 is the current mean
        return _rollout(z0, actions)

    mpc = MPC(CEMPlanner(rollout, _cem(horizon=3, iterations=1)), torch.tensor([[0.8, -0.6]]),
              torch.Generator().manual_seed(0))
    mpc.act(torch.zeros(1, 2))
    prev = mpc._prev.clone()
    seen.clear()
    mpc.act(torch.zeros(1, 2))
    assert torch.allclose(seen[0], torch.cat([prev[1:], prev[-1:]]))


class StepToward:
    """A planner that is not CEM: the largest allowed step straight at the goal, repeated over the horizon."""

    low, high = (-0.2, -0.2), (0.2, 0.2)

    def __init__(self):
        self.calls = []

    def plan(self, z0, z_goal, generator, init_mean=None) -> PlanResult:
        self.calls.append(init_mean)
        step = (z_goal - z0).clamp(-0.2, 0.2).view(1, 2)  # (1, A)
        return PlanResult(actions=step.repeat(2, 1), energy=0.0, confidence=1.0, elite_spread=0.0)


def test_mpc_takes_any_planner_through_the_interface():
    planner: Planner = StepToward()
    log = run_mpc_episode(PointEnv(), _encode, lambda zg: MPC(planner, zg, torch.Generator()), max_steps=10)
    assert log.success and log.steps == 4  # as the oracle: 0.8 along x at 0.2 per step
    assert planner.calls[0] is None and planner.calls[1].shape == (2, 2)  # then warm-started from the last plan
    # CEM behind the interface is exactly cem_plan
    cfg, zg = _cem(), torch.tensor([[0.8, -0.6]])
    a = CEMPlanner(_rollout, cfg).plan(torch.zeros(1, 2), zg, torch.Generator().manual_seed(5))
    b = cem_plan(_rollout, torch.zeros(1, 2), zg, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a.actions, b.actions) and a.energy == b.energy


def test_plan_config_validation():
    with pytest.raises(ValueError):
        WMPlanConfig(cem=CEMConfig(topk=500))
    with pytest.raises(ValueError):
        WMPlanConfig(prior_weight=1.5)
    with pytest.raises(ValueError, match="action bounds recorded"):  # bounds come from the model, not the recipe
        WMPlanConfig(cem=CEMConfig(low=(-1.0,), high=(1.0,)))
    with pytest.raises(ValueError, match="no action bounds"):
        cem_plan(_rollout, torch.zeros(1, 2), torch.zeros(1, 2), WMPlanConfig().cem, torch.Generator())


FLAT = {"horizon": 2, "samples": 48, "topk": 6, "iterations": 3, "momentum_mean": 0.2, "momentum_std": 0.3,
        "energy": "sum", "max_steps": 30, "prior_weight": 0.0}  # `plan` as earlier model files store it


def test_flat_plan_spelling_reads_as_nested():
    nested = {"cem": {k: FLAT[k] for k in FLAT if k not in ("max_steps", "prior_weight")}, "max_steps": 30,
              "prior_weight": 0.0}
    old, new = from_dict(WMPlanConfig, FLAT), from_dict(WMPlanConfig, nested)
    assert old == new and old.cem.samples == 48 and old.cem.energy == "sum"
    assert from_dict(WMPlanConfig, to_dict(old)) == old  # and what is written now reads back
    # the CEM a model with these settings plans with is the one the flat settings gave before
    before = CEMConfig(low=(-0.1, -0.1), high=(0.1, 0.1), horizon=2, samples=48, topk=6, iterations=3,
                       momentum_mean=0.2, momentum_std=0.3, energy="sum")
    assert old.cem_for([-0.1, -0.1], [0.1, 0.1]) == before
    with pytest.raises(VjepaError, match="old spelling of 'cem.samples'"):
        from_dict(WMPlanConfig, {"samples": 8, "cem": {"samples": 16}})


def test_flat_plan_spelling_in_recipes_and_sets(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("plan: {horizon: 2, samples: 48, topk: 6, iterations: 3, max_steps: 9}\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("plan: {cem: {horizon: 2, samples: 48, topk: 6, iterations: 3}, max_steps: 9}\n")
    a, b = load_recipe(WMConfig, flat), load_recipe(WMConfig, nested)
    assert a == b and a.plan.cem.samples == 48
    # a later override wins whichever spelling the recipe and the override use
    for recipe in (flat, nested):
        for key in ("plan.samples", "plan.cem.samples"):
            assert load_recipe(WMConfig, recipe, [f"{key}=64"]).plan.cem.samples == 64
    assert load_recipe(WMConfig, None, ["plan.iterations=7", "plan.cem.topk=2"]).plan.cem == CEMConfig(iterations=7, topk=2)


class CoastEnv(PointEnv):
    """A point with momentum: the action adds to the velocity; one frame (the position) shows no velocity."""

    def __init__(self):
        super().__init__()
        self.v = np.zeros(2, np.float32)

    def step(self, a):
        self.v = 0.9 * self.v + np.clip(a, -0.2, 0.2)
        self.p = self.p + self.v
        return self.render()


def _coast_rollout(z0, actions):  # exact for CoastEnv given two frames and the action between them
    if isinstance(z0, torch.Tensor):  # one frame: the velocity is unknown, taken as zero
        p, v = z0.view(1, 2), torch.zeros(1, 2)
    else:
        p, v = z0.frames[-1].view(1, 2), (z0.frames[-1] - z0.frames[-2]).view(1, 2)
    out = []
    for h in range(actions.shape[1]):
        v = 0.9 * v + actions[:, h]
        p = p + v
        out.append(p)
    return torch.stack(out, 1).unsqueeze(2)  # (S, H, 1, 2)


def test_context_passes_recent_frames_and_executed_actions():
    from vjepa_cli.models.world_model import PlanContext

    starts = []

    def rollout(z0, actions):
        starts.append(z0)
        return _rollout(z0 if isinstance(z0, torch.Tensor) else z0.frames[-1], actions)

    mpc = MPC(CEMPlanner(rollout, _cem(iterations=1)), torch.tensor([[0.8, -0.6]]), torch.Generator().manual_seed(0),
              context=3, make_context=PlanContext)
    zs, acts = [torch.full((1, 2), float(i)) for i in range(4)], []
    for z in zs:
        starts.clear()
        acts.append(torch.as_tensor(mpc.act(z)[0]))
        first = starts[0]
        if z is zs[0]:
            assert first is z  # nothing seen yet: the frame alone
        else:
            k = min(len(acts) - 1, 2)  # frames before this one in the context
            assert torch.equal(first.frames, torch.stack(zs[len(acts) - 1 - k: len(acts)]))
            assert torch.equal(first.actions, torch.stack(acts[len(acts) - 1 - k: len(acts) - 1]))
    with pytest.raises(ValueError):
        WMPlanConfig(context=0)


def test_context_lets_mpc_stop_a_coasting_point():
    # with two frames the exact model sees the velocity and the point settles on the goal; with one frame the
    # model believes it stands still, keeps accelerating toward the goal and overshoots it
    from vjepa_cli.models.world_model import PlanContext

    def run(context):
        gen = torch.Generator().manual_seed(0)

        def mpc(zg):
            return MPC(CEMPlanner(_coast_rollout, _cem(horizon=3, iterations=4, energy="sum")), zg, gen,
                       context=context, make_context=PlanContext)

        return run_mpc_episode(CoastEnv(), _encode, mpc, max_steps=30)

    assert run(2).success
    assert not run(1).success


class StateCoastEnv(CoastEnv):
    """CoastEnv that also reports its velocity as the observed state."""

    def state(self):
        return self.v.copy()


def test_observed_states_reach_the_model_with_each_frame():
    # a model that reads the velocity from the observed state stops the coasting point from a single frame
    # (context 1): MPC hands it the current state; the state history follows the frames when context > 1
    from vjepa_cli.models.world_model import PlanContext

    starts = []

    def rollout(z0, actions):
        assert isinstance(z0, PlanContext) and z0.states is not None
        starts.append(z0)
        p, v = z0.frames[-1].view(1, 2), z0.states[-1].view(1, 2)
        out = []
        for h in range(actions.shape[1]):
            v = 0.9 * v + actions[:, h]
            p = p + v
            out.append(p)
        return torch.stack(out, 1).unsqueeze(2)

    def run(context):
        gen = torch.Generator().manual_seed(0)

        def mpc(zg):
            return MPC(CEMPlanner(rollout, _cem(horizon=3, iterations=4, energy="sum")), zg, gen,
                       context=context, make_context=PlanContext)

        return run_mpc_episode(StateCoastEnv(), _encode, mpc, max_steps=30, states=True)

    assert run(1).success
    assert all(s.frames.shape[0] == 1 and s.actions.shape[0] == 0 for s in starts)
    starts.clear()
    run(2)
    assert starts[0].states.shape == (1, 2) and starts[-1].states.shape == (2, 2)  # the frames' states
