"""Learned reward, policy and state heads on frozen features: they fit known functions, stay within the bounds,
are stored in the world-model file, and plug into planning (reward and state energies) and MPC (PolicyPrior)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vjepa_cli.config.wm import WMHeadsConfig, WMPlanConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.reward_head import RewardHead, RewardHeadConfig
from vjepa_cli.models.state_head import StateHead, StateHeadConfig
from vjepa_cli.plan.base import energy_l1
from vjepa_cli.train.wm_data import WMData
from vjepa_cli.train.wm_heads import (
    check_heads,
    rollout_samples,
    train_policy_head,
    train_reward_head,
    train_state_head,
)

pytestmark = pytest.mark.usefixtures("one_thread")
N, D = 4, 6  # tokens, width


def _data(rewards: bool = True, states: bool = False) -> WMData:
    """Point episodes: token 0's first two channels are the position p_t; a_t = p_{t+1} - p_t; r_t = -|p_{t+1}|;
    the states (when asked) are [10 * p_t, a constant, noise]."""
    g = np.random.default_rng(0)
    feats, acts, rews, sts = [], [], [], []
    for _ in range(24):
        a = g.uniform(-0.2, 0.2, (10, 2)).astype(np.float32)
        p = np.concatenate([g.uniform(-0.5, 0.5, (1, 2)), a]).cumsum(0).astype(np.float32)  # (11, 2)
        z = g.normal(0, 0.05, (11, N, D)).astype(np.float32)
        z[:, 0, :2] = p
        feats.append(torch.from_numpy(z))
        acts.append(a)
        rews.append(-np.linalg.norm(p[1:], axis=1).astype(np.float32))
        sts.append(np.concatenate([10 * p, np.full((11, 1), 3.0), g.normal(0, 1, (11, 1))], 1).astype(np.float32))
    return WMData(None, feats, acts, sts if states else [None] * 24, rews if rewards else [None] * 24, ["dx", "dy"],
                  [-0.2, -0.2], [0.2, 0.2], ["x", "y", "c", "n"] if states else [], 10.0, 1, "toy")


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
    from vjepa_cli.eval.wm_methods import blended_energy

    class WM:
        reward_head = RewardHead(RewardHeadConfig(N, D), generator=torch.Generator().manual_seed(0))

    pred, goal = torch.randn(5, 3, N, D), torch.randn(N, D)
    r = WM.reward_head(pred).sum(1)  # (5,)
    e = blended_energy(WM, "final", goal_weight=0.5, reward_weight=2.0)(pred, goal)
    assert torch.allclose(e, 0.5 * energy_l1(pred, goal, "final") - 2.0 * r, atol=1e-6)
    only = blended_energy(WM, "final", goal_weight=0.0, reward_weight=1.0)(pred, goal)
    assert torch.allclose(only, -r, atol=1e-6)


def test_state_head_probes_the_chosen_state_dims_in_state_units():
    data = _data(states=True)
    head, losses = train_state_head(data, WMHeadsConfig(steps=400, hidden=64, lr=3e-3, state_dims=(0, 1)), seed=0)
    assert head.cfg.dims == (0, 1)
    z = torch.cat(list(data.features))
    s = torch.from_numpy(np.concatenate(data.states))[:, :2]  # (M, 2): 10 * position
    with torch.no_grad():
        pred = head.decode(z)
    assert pred.shape == s.shape
    assert float(((pred - s) ** 2).mean()) < 0.05 * float(s.var(0).mean())  # the position is in the features
    assert torch.allclose(head.mean, s.mean(0), atol=1e-4)  # standardised by the training states
    assert losses[-1] < 0.2 * losses[0]
    # all dims: the constant one gets std 1 (not a division by zero), the noise one cannot be probed
    full, _ = train_state_head(data, WMHeadsConfig(steps=5), seed=0)
    assert full.cfg.dims == (0, 1, 2, 3) and full.cfg.std[2] == 1.0


def test_state_probe_ensemble_averages_members_fitted_apart():
    data = _data(states=True)
    cfg = WMHeadsConfig(steps=60, hidden=32, lr=3e-3, state_dims=(0, 1))
    single, one_losses = train_state_head(data, cfg, seed=0)
    ens, losses = train_state_head(data, replace(cfg, state_members=3), seed=0)
    assert ens.cfg.members == 3 and len(ens.more) == 2 and len(losses) == 60
    for a, b in zip(single.body.parameters(), ens.body.parameters(), strict=True):
        assert torch.equal(a, b)  # member 0 is the single probe, to the bit
    assert not torch.equal(ens.more[0].proj.weight, ens.body.proj.weight)  # its own initialisation
    z = torch.cat(list(data.features))
    s = torch.from_numpy(np.concatenate(data.states))[:, :2]
    with torch.no_grad():
        outs = [single(z), ens.more[0](z), ens.more[1](z)]  # (M, 2) each, standardised
        torch.testing.assert_close(ens(z), torch.stack(outs).mean(0))
        err = lambda p: float(((p * ens.std + ens.mean - s) ** 2).mean())  # noqa: E731
        assert err(ens(z)) <= np.mean([err(o) for o in outs])  # the mean's error is at most the members'
    assert not ens.training and not any(p.requires_grad for p in ens.parameters())
    with pytest.raises(ValueError, match="state_members"):
        WMHeadsConfig(state_members=0)


def _integrator(ctx: torch.Tensor, acts: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """A perfect toy predictor: the position (token 0, channels 0-1) of the last context frame plus the summed
    actions after it; (ctx [B, T0, N, D], acts [B, T0 - 1 + H, A], states) -> [B, H, N, D]."""
    T0 = ctx.shape[1]
    assert states.shape[:2] == ctx.shape[:2]  # the context frames' own states come along
    p = ctx[:, -1, 0, :2].unsqueeze(1) + acts[:, T0 - 1:].cumsum(1)  # (B, H, 2)
    out = torch.zeros(ctx.shape[0], p.shape[1], *ctx.shape[2:])
    out[:, :, 0, :2] = p
    return out


def test_rollout_samples_pair_each_prediction_with_the_state_it_predicts():
    data = _data(states=True)
    z, s = rollout_samples(data, _integrator, context=2, steps=3, batch=4)
    per_episode = 10 - 3 - 2 + 2  # starts t = 1..7 of 10 actions, 3 predictions each
    assert z.shape == (24 * per_episode * 3, N, D) and s.shape == (24 * per_episode * 3, 4)
    assert torch.allclose(10 * z[:, 0, :2], s[:, :2], atol=1e-4)  # state x, y = 10 * the predicted position


def test_state_probe_on_rollouts_fits_what_planning_probes():
    data = _data(states=True)

    def blurry(ctx, acts, states):  # predictions with a fixed offset in channel 2: unlike any encoded frame
        out = _integrator(ctx, acts, states)
        out[:, :, 0, 2] = 3.0
        return out

    cfg = WMHeadsConfig(steps=400, hidden=64, lr=3e-3, state_dims=(0, 1))
    plain, _ = train_state_head(data, cfg, seed=0)
    mixed, _ = train_state_head(data, replace(cfg, state_rollout=3), seed=0, rollout=blurry, context=2)
    zp, sp = rollout_samples(data, blurry, context=2, steps=3)
    with torch.no_grad():
        err_plain = float(((plain.decode(zp) - sp[:, :2]) ** 2).mean())
        err_mixed = float(((mixed.decode(zp) - sp[:, :2]) ** 2).mean())
    assert err_mixed < 0.5 * err_plain  # fitted on the predictions, it reads them better


def test_state_head_needs_states_and_dims_in_range():
    with pytest.raises(VjepaError, match="needs states"):
        check_heads(_data(states=False), WMHeadsConfig(state=True))
    with pytest.raises(VjepaError, match=r"state_dims \[0, 7\] out of range.*4 dims \(x, y, c, n\)"):
        check_heads(_data(states=True), WMHeadsConfig(state=True, state_dims=(0, 7)))
    with pytest.raises(VjepaError, match="needs rewards"):
        check_heads(_data(rewards=False), WMHeadsConfig(reward=True))
    check_heads(_data(states=True), WMHeadsConfig(state=True, reward=True))  # all there: no error
    with pytest.raises(ValueError, match="std must be > 0"):
        StateHeadConfig(N, D, (0,), (0.0,), (0.0,))


def _probed_world_model():
    """A stand-in world model whose state probe is a known function: twice token 0's first two channels."""

    class WM:
        reward_head = None
        state_head = StateHead(StateHeadConfig(N, D, (0, 1), (0.0, 0.0), (1.0, 1.0)))

    WM.state_head.forward = lambda z: z[..., 0, :2] * 2.0
    return WM, WM.state_head.forward


def test_state_energy_is_the_probed_state_distance_to_the_goal():
    from vjepa_cli.eval.wm_methods import blended_energy

    WM, probe = _probed_world_model()
    pred, goal = torch.randn(5, 3, N, D), torch.randn(N, D)
    d = (probe(pred) - probe(goal)).norm(dim=-1)  # (5, 3)
    e = blended_energy(WM, "final", goal_weight=0.5, state_weight=2.0)(pred, goal)
    assert torch.allclose(e, 0.5 * energy_l1(pred, goal, "final") + 2.0 * d[:, -1], atol=1e-5)
    only = blended_energy(WM, "sum", goal_weight=0.0, state_weight=1.0)(pred, goal)
    assert torch.allclose(only, d.sum(1), atol=1e-5)
    at_goal = goal.expand(1, 1, N, D)  # a prediction equal to the goal: zero state distance
    assert float(blended_energy(WM, "final", 0.0, state_weight=1.0)(at_goal, goal)[0]) == pytest.approx(0, abs=1e-6)
    with pytest.raises(VjepaError, match="no reward head"):
        blended_energy(WM, "final", 1.0, reward_weight=1.0)


def test_rest_energy_is_the_probed_state_change_over_the_last_step():
    from vjepa_cli.eval.wm_methods import blended_energy

    WM, probe = _probed_world_model()
    pred, goal = torch.randn(5, 3, N, D), torch.randn(N, D)
    d = (probe(pred) - probe(goal)).norm(dim=-1)  # (5, 3)
    moved = (probe(pred[:, 2]) - probe(pred[:, 1])).norm(dim=-1)  # (5,)
    e = blended_energy(WM, "final", goal_weight=0.0, state_weight=1.0, rest_weight=0.5)(pred, goal)
    assert torch.allclose(e, d[:, -1] + 0.5 * moved, atol=1e-5)
    still = pred.clone()
    still[:, 2] = still[:, 1]  # the last two predicted frames equal: no rest cost
    e_still = blended_energy(WM, "final", goal_weight=0.0, state_weight=1.0, rest_weight=0.5)(still, goal)
    assert torch.allclose(e_still, (probe(still[:, 2]) - probe(goal)).norm(dim=-1), atol=1e-5)
    with pytest.raises(VjepaError, match="horizon of at least 2"):
        blended_energy(WM, "final", 1.0, rest_weight=1.0)(pred[:, :1], goal)

    class NoHead:
        reward_head = state_head = None

    with pytest.raises(VjepaError, match="no state head"):
        blended_energy(NoHead, "final", 1.0, rest_weight=1.0)
    with pytest.raises(ValueError, match="rest_weight"):
        WMPlanConfig(rest_weight=-1.0)


def test_heads_in_the_model_file_and_in_eval(tmp_path):
    from tests.test_wm_cli import TINY
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    cfg = load_recipe(WMConfig, recipe, [*TINY, "heads.reward=true", "heads.policy=true", "heads.state=true",
                                         "heads.state_dims=[0,1]", "heads.steps=5", "heads.hidden=16",
                                         "heads.state_members=2"])
    res = run_wm_train(cfg, tmp_path / "run")
    wm = load_world_model(res.model_path)
    assert wm.reward_head is not None and wm.policy_head is not None and wm.state_head is not None
    assert wm.state_head.cfg.dims == (0, 1) and wm.state_head.cfg.proj == 8
    assert wm.state_head.cfg.members == 2 and len(wm.state_head.more) == 1  # the ensemble round-trips strictly
    assert set(wm.meta["heads_loss"]) == {"reward", "policy", "state"}
    ev = run_wm_eval(res.model_path, "reach2d", episodes=1,
                     methods=["cem+prior", "cem+reward", "mppi+reward-only", "gd+state-only", "cem+state"],
                     out_dir=tmp_path / "ev", device="cpu")
    names = [r.method for r in ev.rows]
    assert names == ["world model (CEM+prior)", "world model (CEM+reward)", "world model (MPPI+reward-only)",
                     "world model (GD+state-only)", "world model (CEM+state)", "random", "oracle", "policy"]
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["methods"][7]["method"] == "policy"
    with pytest.raises(Exception, match="unknown planning method"):
        run_wm_eval(res.model_path, "reach2d", episodes=1, methods=["cem+magic"], out_dir=tmp_path / "x")

    # `wm plan` plans on the energy the plan weights name: here the probed-state distance alone
    from vjepa_cli.data.media.write import write_png
    from vjepa_cli.envs.reach2d import Reach2D
    from vjepa_cli.eval.wm import run_wm_plan

    env = Reach2D(size=32)
    env.reset(np.random.default_rng(1))
    write_png(tmp_path / "s.png", env.render())
    write_png(tmp_path / "g.png", env.goal_image())
    sets = ["plan.goal_weight=0", "plan.state_weight=1"]
    p = run_wm_plan(res.model_path, tmp_path / "s.png", tmp_path / "g.png", sets=sets, seed=0, device="cpu")
    z = wm.encode(np.stack([env.render(), env.goal_image()]))  # (2, N, D)
    with torch.no_grad():
        pred = wm.rollout(z[0], torch.tensor([p.actions]))  # (1, H, N, D)
        probed = float(wm.state_head.distance(pred[:, -1], z[1])[0])
    assert p.energy == pytest.approx(probed, rel=1e-4, abs=1e-6)
    plain = run_wm_plan(res.model_path, tmp_path / "s.png", tmp_path / "g.png", seed=0, device="cpu")
    assert plain.energy == pytest.approx(float(energy_l1(
        wm.rollout(z[0], torch.tensor([plain.actions])), z[1])[0]), rel=1e-4, abs=1e-6)


def test_heads_cosine_schedule_follows_the_closed_form_and_constant_stays_flat(monkeypatch):
    from vjepa_cli.train import wm_heads

    seen: list[float] = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    module = torch.nn.Linear(2, 1)
    loss = lambda g: module(torch.ones(3, 2)).pow(2).mean()  # noqa: E731
    for schedule, want in (("cosine", [0.4 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]),
                           ("constant", [0.4] * 4)):
        seen.clear()
        wm_heads._fit(module.train().requires_grad_(True), loss, WMHeadsConfig(steps=4, lr=0.4, lr_schedule=schedule),
                      torch.Generator())
        assert seen == pytest.approx(want)
    with pytest.raises(ValueError, match="lr_schedule"):
        WMHeadsConfig(lr_schedule="linear")


def test_state_probe_learns_from_the_collections_extra_poses():
    """Episodes that show few poses (token 0 holds a position p in [0.05, 0.15]^2; the state is 10 |p|) and extra
    reset frames that show the whole range: only a probe trained on those reads held-out poses over the range
    (fit on the episodes alone, 10 |p| looks like 10 p and is extrapolated as such)."""
    g = np.random.default_rng(0)

    def frames(p: np.ndarray) -> torch.Tensor:  # (M, 2) -> (M, N, D)
        z = g.normal(0, 0.02, (len(p), N, D)).astype(np.float32)
        z[:, 0, :2], z[:, 0, 2] = p, 1.0  # a constant beside p: the probe's LayerNorm keeps its scale
        return torch.from_numpy(z)

    eps = [g.uniform(0.05, 0.15, (11, 2)).astype(np.float32) for _ in range(24)]
    wide, held = g.uniform(-1, 1, (600, 2)).astype(np.float32), g.uniform(-1, 1, (200, 2)).astype(np.float32)
    data = WMData(None, [frames(p) for p in eps], [np.zeros((10, 2), np.float32)] * 24, [10 * np.abs(p) for p in eps],
                  [None] * 24, ["dx", "dy"], [-0.2, -0.2], [0.2, 0.2], ["x", "y"], 10.0, 1, "toy")
    cfg = WMHeadsConfig(steps=1000, hidden=64, lr=3e-3, batch_size=64)
    zh, sh = frames(held), torch.from_numpy(10 * np.abs(held))
    err = {}
    for extra in (False, True):
        if extra:
            data.probe_features, data.probe_states = frames(wide), 10 * np.abs(wide)
        head, _ = train_state_head(data, cfg, seed=0)
        with torch.no_grad():
            err[extra] = float((head.decode(zh) - sh).abs().mean())
    assert err[True] < 0.6 and err[False] > 4 * err[True], err
