"""Learned reward and policy heads on frozen features: they fit known functions, stay within the bounds,
are stored in the world-model file, and plug into planning (reward energy) and MPC (PolicyPrior)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa_cli.config.wm import WMHeadsConfig
from vjepa_cli.models.reward_head import RewardHead, RewardHeadConfig
from vjepa_cli.plan.base import energy_l1
from vjepa_cli.train.wm_data import WMData
from vjepa_cli.train.wm_heads import train_policy_head, train_reward_head

pytestmark = pytest.mark.usefixtures("one_thread")
N, D = 4, 6  # tokens, width


def _data(rewards: bool = True) -> WMData:
    """Point episodes: token 0's first two channels are the position p_t; a_t = p_{t+1} - p_t; r_t = -|p_{t+1}|."""
    g = np.random.default_rng(0)
    feats, acts, rews = [], [], []
    for _ in range(24):
        a = g.uniform(-0.2, 0.2, (10, 2)).astype(np.float32)
        p = np.concatenate([g.uniform(-0.5, 0.5, (1, 2)), a]).cumsum(0).astype(np.float32)  # (11, 2)
        z = g.normal(0, 0.05, (11, N, D)).astype(np.float32)
        z[:, 0, :2] = p
        feats.append(torch.from_numpy(z))
        acts.append(a)
        rews.append(-np.linalg.norm(p[1:], axis=1).astype(np.float32))
    return WMData(None, feats, acts, [None] * 24, rews if rewards else [None] * 24, ["dx", "dy"], [-0.2, -0.2],
                  [0.2, 0.2], [], 10.0, 1, "toy")


def test_reward_head_fits_the_recorded_rewards_in_reward_units():
    data = _data()
    head, losses = train_reward_head(data, WMHeadsConfig(steps=300, hidden=64, lr=3e-3), seed=0)
    z = torch.cat([f[1:] for f in data.features])
    r = torch.cat([torch.from_numpy(x) for x in data.rewards])
    with torch.no_grad():
        pred = head(z)
    assert pred.shape == r.shape
    assert float(((pred - r) ** 2).mean()) < 0.15 * float(r.var())  # explains most of the variance
    assert abs(float(pred.mean() - r.mean())) < 0.05  # the standardisation is folded back: reward units
    assert losses[-1] < losses[0]
    with pytest.raises(Exception, match="rewards"):
        train_reward_head(_data(rewards=False), WMHeadsConfig(steps=1), seed=0)


def test_policy_head_clones_the_goal_reaching_actions_within_bounds():
    data = _data()
    cfg = WMHeadsConfig(steps=400, hidden=64, lr=3e-3, goal_horizon=1)  # goal = next frame: a_t is determined
    head, losses = train_policy_head(data, cfg, seed=0)
    z = torch.stack([f[:-1] for f in data.features]).flatten(0, 1)  # (M, N, D)
    zg = torch.stack([f[1:] for f in data.features]).flatten(0, 1)
    a = torch.from_numpy(np.concatenate(data.actions))
    with torch.no_grad():
        pred = head(z, zg)
    assert ((pred >= -0.2) & (pred <= 0.2)).all()
    assert float(((pred - a) ** 2).mean()) < 0.2 * float(a.var())
    assert losses[-1] < losses[0]
    a2, _ = train_policy_head(data, WMHeadsConfig(steps=3), seed=0)
    b2, _ = train_policy_head(data, WMHeadsConfig(steps=3), seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a2.state_dict().values(), b2.state_dict().values(), strict=True))


def test_reward_energy_blends_goal_energy_and_reward():
    from vjepa_cli.eval.wm_methods import reward_energy

    class WM:
        reward_head = RewardHead(RewardHeadConfig(N, D), generator=torch.Generator().manual_seed(0))

    pred, goal = torch.randn(5, 3, N, D), torch.randn(N, D)
    r = WM.reward_head(pred).sum(1)  # (5,)
    e = reward_energy(WM, "final", goal_weight=0.5, reward_weight=2.0)(pred, goal)
    assert torch.allclose(e, 0.5 * energy_l1(pred, goal, "final") - 2.0 * r, atol=1e-6)
    only = reward_energy(WM, "final", goal_weight=0.0, reward_weight=1.0)(pred, goal)
    assert torch.allclose(only, -r, atol=1e-6)


def test_heads_in_the_model_file_and_in_eval(tmp_path):
    from tests.test_wm_cli import TINY
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    cfg = load_recipe(WMConfig, recipe, [*TINY, "heads.reward=true", "heads.policy=true", "heads.steps=5",
                                         "heads.hidden=16"])
    res = run_wm_train(cfg, tmp_path / "run")
    wm = load_world_model(res.model_path)
    assert wm.reward_head is not None and wm.policy_head is not None
    assert set(wm.meta["heads_loss"]) == {"reward", "policy"}
    ev = run_wm_eval(res.model_path, "reach2d", episodes=1, methods=["cem+prior", "cem+reward", "mppi+reward-only"],
                     out_dir=tmp_path / "ev", device="cpu")
    names = [r.method for r in ev.rows]
    assert names == ["world model (CEM+prior)", "world model (CEM+reward)", "world model (MPPI+reward-only)",
                     "random", "oracle", "policy"]
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["methods"][5]["method"] == "policy"
    with pytest.raises(Exception, match="unknown planning method"):
        run_wm_eval(res.model_path, "reach2d", episodes=1, methods=["cem+magic"], out_dir=tmp_path / "x")
