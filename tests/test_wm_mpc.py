"""MPC loop and policy prior, with a toy point-mass world model whose features are the position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_cli.config.wm import WMPlanConfig
from vjepa_cli.plan.mpc import Planner, cem_config, run_mpc_episode, run_policy_episode


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


def _cem(**kw):
    return cem_config(WMPlanConfig(**{"horizon": 2, "samples": 64, "topk": 8, "iterations": 4, **kw}),
                      (-0.2, -0.2), (0.2, 0.2))


@pytest.mark.parametrize("energy,max_steps", [("sum", 7), ("final", 20)])
def test_mpc_reaches_goal_with_exact_model(energy, max_steps):
    # "sum" rewards being close at every step (greedy first action); "final" only constrains a1 + a2, so the
    # executed first action is one of many optimal splits and MPC may take a detour
    env, gen = PointEnv(), torch.Generator().manual_seed(0)
    log = run_mpc_episode(env, _encode, lambda zg: Planner(_rollout, zg, _cem(energy=energy), gen), max_steps=max_steps)
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
    cfg = _cem(iterations=1)
    cfg = type(cfg)(**{**cfg.__dict__, "init_std": (1e-4, 1e-4), "momentum_mean": 0.0})
    a, res, _ = Planner(_rollout, zg, cfg, torch.Generator().manual_seed(0)).act(z, prior)
    assert np.allclose(res.actions[0].numpy(), prior, atol=1e-3)
    # a real CEM from the prior: the plan heads to the goal; executed = 0.75 * plan + 0.25 * prior
    planner = Planner(_rollout, zg, _cem(iterations=6), torch.Generator().manual_seed(0), prior_weight=0.25)
    a, res, _ = planner.act(z, prior)
    plan0 = res.actions[0].numpy()
    assert plan0[0] > 0.1 and plan0[1] < -0.1
    assert np.allclose(a, 0.75 * plan0 + 0.25 * prior, atol=1e-6)


def test_warm_start_shifts_previous_plan():
    seen = []

    def rollout(z0, actions):
        seen.append(actions[0].clone())  # sample 0 is the current mean
        return _rollout(z0, actions)

    planner = Planner(rollout, torch.tensor([[0.8, -0.6]]), _cem(horizon=3, iterations=1), torch.Generator().manual_seed(0))
    planner.act(torch.zeros(1, 2))
    prev = planner._prev.clone()
    seen.clear()
    planner.act(torch.zeros(1, 2))
    assert torch.allclose(seen[0], torch.cat([prev[1:], prev[-1:]]))


def test_plan_config_validation():
    with pytest.raises(ValueError):
        WMPlanConfig(topk=500)
    with pytest.raises(ValueError):
        WMPlanConfig(prior_weight=1.5)
