"""A predictor that predicts the next state (`predictor.predict_states`): the state token's read-out, the
rollout that feeds predicted states forward, its losses, learning known state dynamics, and the planning energy
that reads the predicted states (`plan.state_from=predictor`)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from vjepa_cli.config.wm import WMConfig, WMPlanConfig, WMPredictorConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.wm_methods import blended_energy, plan_energy, plan_rollout
from vjepa_cli.models.ac_predictor import ACPredictor, ACPredictorConfig, autoregress
from vjepa_cli.models.state_head import StateHead, StateHeadConfig
from vjepa_cli.models.world_model import Predicted
from vjepa_cli.train.wm import recipe_hash, rollout_loss, state_error, teacher_forcing_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw) -> ACPredictorConfig:
    base = dict(embed_dim=16, pred_embed_dim=24, depth=1, num_heads=2, action_dim=2, grid=(2, 2), state_dim=2,
                predict_states=True)
    return ACPredictorConfig(**{**base, **kw})


def _step(seen: list, bias: tuple[float, float] = (0.0, 0.0)):
    """Known dynamics: z_{t+1} = z_t + a_t[0], s_{t+1} = s_t + a_t (+ `bias`, a model off by it); records the
    states it is given."""

    def model(z, a, s, with_states=False):
        seen.append(s.clone())
        z_next = z + a[..., :1].unsqueeze(-1)
        return (z_next, s + a + torch.tensor(bias)) if with_states else z_next

    return model


def test_rollout_feeds_its_predicted_states_forward():
    seen: list = []
    z, a = torch.randn(2, 2, 3, 4), torch.randn(2, 4, 2)  # 2 context frames, 1 context action + 3 new ones
    s = torch.randn(2, 2, 2)  # the context's observed states
    feats, states = autoregress(_step(seen), z, a, s, feed_states=True)
    expected = s[:, -1:] + a[:, 1:].cumsum(1)  # s_2 = s_1 + a_1, ... (the closed form of the toy)
    torch.testing.assert_close(states, expected)
    torch.testing.assert_close(feats, z[:, -1:] + a[:, 1:, :1].cumsum(1).unsqueeze(-1))
    assert [x.shape[1] for x in seen] == [2, 3, 4]
    torch.testing.assert_close(seen[-1][:, 2:], expected[:, :2])  # later steps read the predicted states
    seen.clear()
    autoregress(_step(seen), z, a, s)  # without feeding, the last observed state is held (as before)
    assert torch.equal(seen[-1][:, 2:], s[:, -1:].expand(-1, 2, -1))
    with pytest.raises(ValueError, match="context's states"):
        autoregress(_step(seen), z, a, s[:, :1], feed_states=True)


def test_losses_score_the_predicted_states_in_standardised_units():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 4, 2, generator=g)
    z0, s0 = torch.randn(2, 1, 3, 4, generator=g), torch.randn(2, 1, 2, generator=g)
    z = torch.cat([z0, z0 + a[..., :1].cumsum(1).unsqueeze(-1)], 1)  # (2, 5, 3, 4)
    s = torch.cat([s0, s0 + a.cumsum(1)], 1)  # (2, 5, 2)
    std = torch.tensor([2.0, 0.5])
    assert teacher_forcing_loss(_step([]), z, a, s, std).item() == pytest.approx(0.0, abs=1e-6)
    assert rollout_loss(_step([]), z, a, s, 3, std).item() == pytest.approx(0.0, abs=1e-6)
    off = _step([], (0.0, 0.1))  # the second dimension off by 0.1 = 0.2 of its spread at every step
    # teacher forcing: the mean over both dimensions (0 + 0.2) / 2, times the weight 3
    assert teacher_forcing_loss(off, z, a, s, std, 3.0).item() == pytest.approx(0.3, abs=1e-5)
    # a rollout compounds it: 0.2, 0.4, 0.6 of the spread -> (0 + 0.4) / 2, times 3
    assert rollout_loss(off, z, a, s, 3, std, 3.0).item() == pytest.approx(0.6, abs=1e-5)
    # squared instead: 0.2 ** 2 / 2 x 3, and (0.2 ** 2 + 0.4 ** 2 + 0.6 ** 2) / 3 / 2 x 3
    assert teacher_forcing_loss(off, z, a, s, std, 3.0, "l2").item() == pytest.approx(0.06, abs=1e-5)
    assert rollout_loss(off, z, a, s, 3, std, 3.0, "l2").item() == pytest.approx(0.28, abs=1e-5)


def test_squared_state_error_learns_a_rare_push_where_the_absolute_one_predicts_no_change():
    # a block that moves by 5 in one step of five and stays otherwise: the L1 fit is the median change (0), blind
    # to the push a planner is looking for; the L2 fit is the mean change (1)
    change = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0]).unsqueeze(-1)  # (5, 1)
    fits = {}
    for kind in ("l1", "l2"):
        guess = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([guess], lr=0.05)
        for _ in range(400):
            opt.zero_grad()
            state_error(guess.expand(5, 1), change, torch.ones(1), kind).backward()
            opt.step()
        fits[kind] = guess.item()
    assert fits["l1"] == pytest.approx(0.0, abs=0.06) and fits["l2"] == pytest.approx(1.0, abs=0.01)


def test_state_token_reads_out_a_standardised_change():
    cfg = _cfg(state_mean=(1.0, -4.0), state_std=(2.0, 10.0))
    pred = ACPredictor(cfg, generator=torch.Generator().manual_seed(0)).eval()
    assert {"state_proj.weight", "state_proj.bias"} <= set(pred.state_dict())
    assert "state_mean" not in pred.state_dict()  # statistics are config, not weights
    z, a, s = torch.randn(2, 3, 4, 16), torch.randn(2, 3, 2), torch.randn(2, 3, 2) * 5
    feats, nxt = pred(z, a, s, with_states=True)
    assert torch.equal(feats, pred(z, a, s)) and nxt.shape == (2, 3, 2)
    with torch.no_grad():
        pred.state_proj.weight.zero_()
        pred.state_proj.bias.copy_(torch.tensor([0.5, -0.1]))  # a change of +0.5 and -0.1 spreads
    _, nxt = pred(z, a, s, with_states=True)
    torch.testing.assert_close(nxt, s + torch.tensor([1.0, -1.0]))  # in the states' own units
    plain = ACPredictor(_cfg(predict_states=False), generator=torch.Generator().manual_seed(0)).eval()
    with pytest.raises(ValueError, match="does not predict states"):
        plain(z, a, s, with_states=True)
    assert "state_proj.weight" not in plain.state_dict()
    with pytest.raises(ValueError, match="state tokens"):
        _cfg(state_dim=0)
    with pytest.raises(ValueError, match="state_mean"):
        _cfg(state_mean=(0.0,), state_std=(1.0,))
    with pytest.raises(ValueError, match="need predictor.use_states"):
        WMPredictorConfig(predict_states=True)


def test_predictor_learns_state_dynamics_its_rollouts_use():
    """s_{t+1} = s_t + 3 a_t, hidden from the features: 150 AdamW steps make 3-step rollouts of the state far
    more accurate than holding the first state, which is what planning did before."""
    g = torch.Generator().manual_seed(0)
    pred = ACPredictor(_cfg(state_mean=(0.0, 0.0), state_std=(3.0, 3.0)), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(pred.parameters(), lr=3e-3)
    std = torch.tensor([3.0, 3.0])

    def batch():
        a = torch.rand(16, 4, 2, generator=g) * 2 - 1
        s0 = torch.randn(16, 1, 2, generator=g) * 3
        s = torch.cat([s0, s0 + (3 * a).cumsum(1)], 1)  # (16, 5, 2)
        z = torch.nn.functional.layer_norm(torch.randn(16, 5, 4, 16, generator=g), (16,))  # unrelated features
        return z, a, s

    for _ in range(150):
        z, a, s = batch()
        loss = teacher_forcing_loss(pred, z, a, s, std) + rollout_loss(pred, z, a, s, 3, std)
        opt.zero_grad()
        loss.backward()
        opt.step()
    z, a, s = batch()
    with torch.no_grad():
        _, states = pred.eval().rollout(z[:, :1], a[:, :3], s[:, :1], return_states=True)  # (16, 3, 2)
    err = (states - s[:, 1:4]).abs().mean()
    held = (s[:, :1] - s[:, 1:4]).abs().mean()
    assert err < 0.25 * held
    assert pred.rollout(z[:, :1], a[:, :3], s[:, :1]).shape == (16, 3, 4, 16)  # features only, by default


def _wm(predict_states: bool):
    head = StateHead(StateHeadConfig(num_tokens=4, embed_dim=16, dims=(1,), mean=(2.0,), std=(4.0,)),
                     generator=torch.Generator().manual_seed(0)).eval()
    pred = SimpleNamespace(cfg=SimpleNamespace(predict_states=predict_states, state_dims=()))
    return SimpleNamespace(state_head=head, reward_head=None, predictor=pred, rollout="features",
                           rollout_states="features and states")


def test_energy_reads_the_predicted_states_against_the_goal_images_probe():
    wm = _wm(True)
    feats, goal = torch.randn(5, 3, 4, 16), torch.randn(4, 16)
    states = torch.randn(5, 3, 2) * 4
    energy = blended_energy(wm, "final", 0.0, state_weight=2.0)
    e = energy(Predicted(feats, states), goal)
    with torch.no_grad():
        goal_state = wm.state_head(goal[None])[0]  # (1,) standardised
        expected = 2.0 * ((states[:, -1, 1:] - 2.0) / 4.0 - goal_state).norm(dim=-1)
    torch.testing.assert_close(e, expected)
    assert torch.equal(energy(Predicted(feats + 1.0, states), goal), e)  # the probe does not read the features
    probed = energy(feats, goal)  # plain features: the probe reads them, as before
    torch.testing.assert_close(probed, 2.0 * wm.state_head.distance(feats[:, -1], goal))
    plan = WMPlanConfig(goal_weight=1.0, state_from="predictor")
    assert plan_energy(wm, plan, "final") is not None  # the L1 alone must still unpack the predicted tuple
    assert plan_rollout(wm, plan) == "features and states"
    assert plan_rollout(wm, WMPlanConfig()) == "features"
    with pytest.raises(VjepaError, match="predicts states"):
        plan_rollout(_wm(False), plan)


def _wm2():
    head = StateHead(StateHeadConfig(num_tokens=4, embed_dim=16, dims=(0, 1), mean=(0.0, 2.0), std=(1.0, 4.0)),
                     generator=torch.Generator().manual_seed(0)).eval()
    pred = SimpleNamespace(cfg=SimpleNamespace(predict_states=True, state_dims=()))
    return SimpleNamespace(state_head=head, reward_head=None, predictor=pred, rollout_states="features and states")


def test_state_weights_scale_each_entrys_gap_and_a_zero_ignores_it():
    wm, feats, goal = _wm2(), torch.randn(6, 2, 4, 16), torch.randn(4, 16)
    states = torch.randn(6, 2, 2) * 3
    plan = WMPlanConfig(goal_weight=0.0, state_weight=1.0, state_from="predictor", state_weights=(0.0, 3.0))
    e = plan_energy(wm, plan, "final")(Predicted(feats, states), goal)
    with torch.no_grad():
        goal_state = wm.state_head(goal[None])[0]  # (2,) standardised
    expected = 3.0 * ((states[:, -1, 1] - 2.0) / 4.0 - goal_state[1]).abs()  # entry 0 weighs nothing
    torch.testing.assert_close(e, expected)
    moved = states.clone()
    moved[..., 0] += 5.0
    assert torch.equal(plan_energy(wm, plan, "final")(Predicted(feats, moved), goal), e)
    even = plan_energy(wm, replace(plan, state_weights=()), "final")(Predicted(feats, moved), goal)
    assert not torch.allclose(even, e)  # with no weights entry 0 counts again
    with pytest.raises(VjepaError, match="3 entries, the state probe reads 2"):
        plan_energy(wm, replace(plan, state_weights=(1.0, 1.0, 1.0)), "final")
    for bad in ((0.0, 0.0), (-1.0, 1.0)):
        with pytest.raises(ValueError, match="state_weights"):
            WMPlanConfig(state_weight=1.0, state_weights=bad)


def test_predict_states_is_part_of_the_recipe_a_checkpoint_resumes_with():
    cfg = WMConfig(predictor=WMPredictorConfig(use_states=True))
    on = replace(cfg, predictor=replace(cfg.predictor, predict_states=True))
    assert recipe_hash(cfg) != recipe_hash(on)
    heavier = replace(cfg.loss, state_weight=3.0)
    assert recipe_hash(cfg) == recipe_hash(replace(cfg, loss=heavier))  # unused without predict_states
    assert recipe_hash(on) != recipe_hash(replace(on, loss=heavier))
    assert recipe_hash(on) != recipe_hash(replace(on, loss=replace(on.loss, state_loss="l2")))


def test_state_dims_pick_the_entries_the_predictor_reads_and_predicts():
    """`predictor.state_dims` [3, 1]: the predictor reads (and predicts) entries 3 and 1 of a 4-d recorded state,
    in that order; planning hands it the full observed state and reads its predictions back by entry."""
    from vjepa_cli.models.world_model import PlanContext, WorldModel

    cfg = _cfg(state_dims=(3, 1), state_mean=(0.0, 0.0), state_std=(1.0, 1.0))
    pred = ACPredictor(cfg, generator=torch.Generator().manual_seed(1)).eval()
    wm = WorldModel(None, pred, (-1.0, -1.0), (1.0, 1.0), ("a0", "a1"), None, {})
    frames, past, a = torch.randn(2, 4, 16), torch.randn(1, 2), torch.randn(5, 3, 2)
    full = torch.randn(2, 4)
    out = wm.rollout_states(PlanContext(frames, past, full), a)
    ref = pred.rollout(frames.unsqueeze(0).expand(5, 2, 4, 16), torch.cat([past.expand(5, 1, 2), a], 1),
                       full[:, [3, 1]].unsqueeze(0).expand(5, 2, 2), return_states=True)
    assert torch.equal(out.features, ref[0]) and torch.equal(out.states, ref[1]) and out.states.shape == (5, 3, 2)
    other = full.clone()
    other[:, [0, 2]] += 5.0  # entries it does not read change nothing
    assert torch.equal(wm.rollout_states(PlanContext(frames, past, other), a).states, out.states)
    head = StateHead(StateHeadConfig(num_tokens=4, embed_dim=16, dims=(1,), mean=(2.0,), std=(4.0,)))
    torch.testing.assert_close(head.standardise(out.states, (3, 1)), (out.states[..., 1:] - 2.0) / 4.0)
    with pytest.raises(ValueError, match="probe reads entries"):
        head.standardise(out.states, (3, 0))
    with pytest.raises(ValueError, match="state_dims"):
        _cfg(state_dims=(1, 1))  # two names for one entry
    with pytest.raises(ValueError, match="out of range"):
        WMPredictorConfig(use_states=True, state_dims=(5,)).ac_config(
            embed_dim=16, grid=(2, 2), action_dim=2, state_dim=4, max_frames=4)
    with pytest.raises(ValueError, match="use_states"):
        WMPredictorConfig(state_dims=(0,))
    picked = WMPredictorConfig(use_states=True, state_dims=(2, 0)).ac_config(
        embed_dim=16, grid=(2, 2), action_dim=2, state_dim=4, max_frames=4)
    assert picked.state_dim == 2 and picked.state_dims == (2, 0)
