"""Action-conditioned predictor: block-causal mask, causality, conditioning, losses on a known toy, training."""

from __future__ import annotations

import pytest
import torch

from vjepa_cli.config.wm import WMOptimConfig
from vjepa_cli.models.ac_predictor import ACPredictor, ACPredictorConfig, autoregress, block_causal_mask
from vjepa_cli.train.wm import rollout_loss, teacher_forcing_loss, wsd_lr

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw) -> ACPredictorConfig:
    base = dict(embed_dim=16, pred_embed_dim=24, depth=2, num_heads=2, action_dim=2, grid=(2, 2))
    return ACPredictorConfig(**{**base, **kw})


def test_block_causal_mask_structure_and_cache():
    m = block_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)
    pred = ACPredictor(_cfg())
    a, b = pred.mask(4, torch.device("cpu")), pred.mask(4, torch.device("cpu"))
    assert a is b and a.shape == (4 * 5, 4 * 5)  # 1 action + 4 patch tokens per frame
    assert pred.mask(2, torch.device("cpu")).shape == (10, 10)
    assert set(pred._masks) == {(4, "cpu"), (2, "cpu")}  # built per T in use, not for a maximum


@pytest.mark.parametrize("pos,state_dim", [("rope", 0), ("learned", 3)])
def test_predictor_is_block_causal_and_action_conditioned(pos, state_dim):
    torch.manual_seed(0)
    pred = ACPredictor(_cfg(pos=pos, state_dim=state_dim), generator=torch.Generator().manual_seed(0)).eval()
    z, a = torch.randn(2, 4, 4, 16), torch.randn(2, 4, 2)
    s = torch.randn(2, 4, 3) if state_dim else None
    y = pred(z, a, s)
    assert y.shape == (2, 4, 4, 16) and torch.isfinite(y).all()
    z2, a2 = z.clone(), a.clone()
    z2[:, 2:] += 1.0
    a2[:, 3] += 1.0
    y2 = pred(z2, a2, s)
    assert torch.allclose(y[:, :2], y2[:, :2], atol=1e-6)  # the future does not leak into the past
    assert (y[:, 2:] - y2[:, 2:]).abs().max() > 1e-3
    a3 = a.clone()
    a3[:, 1] += 1.0
    y3 = pred(z, a3, s)
    assert torch.allclose(y[:, 0], y3[:, 0], atol=1e-6) and (y[:, 1] - y3[:, 1]).abs().max() > 1e-3
    if state_dim:
        with pytest.raises(ValueError, match="states"):
            pred(z, a)
    names = set(pred.state_dict())
    assert {"predictor_embed.weight", "action_encoder.weight", "predictor_blocks.1.attn.qkv.weight",
            "predictor_norm.weight", "predictor_proj.weight"} <= names
    assert ("state_encoder.weight" in names) == bool(state_dim)


def test_rollout_matches_step_by_step():
    pred = ACPredictor(_cfg(), generator=torch.Generator().manual_seed(1)).eval()
    z0, a = torch.randn(3, 1, 4, 16), torch.randn(3, 3, 2)
    out = pred.rollout(z0, a)
    z1 = pred(z0, a[:, :1])[:, -1:]
    z2 = pred(torch.cat([z0, z1], 1), a[:, :2])[:, -1:]
    assert out.shape == (3, 3, 4, 16)
    assert torch.allclose(out[:, :1], z1, atol=1e-6) and torch.allclose(out[:, 1:2], z2, atol=1e-6)


def test_world_model_rollout_from_a_plan_context():
    # a PlanContext is the observed frames and the actions between them, ahead of the planned actions: the
    # predictions equal the predictor's own rollout on that longer sequence, and depend on the older frame
    from vjepa_cli.models.world_model import PlanContext, WorldModel

    pred = ACPredictor(_cfg(), generator=torch.Generator().manual_seed(1)).eval()
    wm = WorldModel(None, pred, (-1.0, -1.0), (1.0, 1.0), ("a0", "a1"), None, {})
    frames, past, a = torch.randn(2, 4, 16), torch.randn(1, 2), torch.randn(5, 3, 2)
    out = wm.rollout(PlanContext(frames, past), a)
    ref = pred.rollout(frames.unsqueeze(0).expand(5, 2, 4, 16), torch.cat([past.expand(5, 1, 2), a], 1))
    assert out.shape == (5, 3, 4, 16) and torch.equal(out, ref)
    assert torch.equal(wm.rollout(frames[-1], a), pred.rollout(frames[-1:].unsqueeze(0).expand(5, 1, 4, 16), a))
    assert not torch.allclose(out, wm.rollout(frames[-1], a), atol=1e-4)


def test_world_model_rollout_with_observed_states():
    # a predictor that reads states gets the context frames' observed states, the last one held ahead; without
    # them it cannot plan, and says so
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.models.world_model import PlanContext, WorldModel

    pred = ACPredictor(_cfg(state_dim=3), generator=torch.Generator().manual_seed(1)).eval()
    wm = WorldModel(None, pred, (-1.0, -1.0), (1.0, 1.0), ("a0", "a1"), None, {})
    frames, past, states, a = torch.randn(2, 4, 16), torch.randn(1, 2), torch.randn(2, 3), torch.randn(5, 3, 2)
    out = wm.rollout(PlanContext(frames, past, states), a)
    ref = pred.rollout(frames.unsqueeze(0).expand(5, 2, 4, 16), torch.cat([past.expand(5, 1, 2), a], 1),
                       states.unsqueeze(0).expand(5, 2, 3))
    assert torch.equal(out, ref)
    other = wm.rollout(PlanContext(frames, past, states + 1.0), a)
    assert (out - other).abs().max() > 1e-3  # the states are read
    with pytest.raises(VjepaError, match="reads the observed state"):
        wm.rollout(frames[-1], a)
    with pytest.raises(VjepaError, match="reads the observed state"):
        wm.rollout(PlanContext(frames, past), a)


def test_rollout_loss_holds_the_first_state_as_planning_does():
    seen = []

    def model(z, a, s):  # records the states of each autoregressive step
        seen.append(s.clone())
        return z + a[..., :1].unsqueeze(-1)

    z, a = torch.randn(2, 4, 3, 4), torch.randn(2, 3, 1)
    s = torch.arange(8.0).view(2, 4, 1)
    rollout_loss(model, z, a, s, 3)
    assert len(seen) == 3
    for st in seen:  # frame 0's state at every step: the true later states are not known when planning
        assert torch.equal(st, s[:, :1].expand(-1, st.shape[1], -1))


def _toy(c: float = 0.0):
    """Known dynamics z_{t+1} = z_t + a_t (a broadcast over tokens), and a model off by a constant c."""

    def model(z, a, s):  # (B, T, N, D), (B, T, A)
        return z + a[..., :1].unsqueeze(-1) + c

    return model


def test_losses_on_known_toy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 5, 1, generator=g)
    z0 = torch.randn(2, 1, 3, 4, generator=g)
    z = torch.cat([z0, z0 + a.cumsum(1).unsqueeze(-1)], 1)  # (2, 6, 3, 4)
    assert teacher_forcing_loss(_toy(), z, a, None).item() == pytest.approx(0.0, abs=1e-6)
    assert rollout_loss(_toy(), z, a, None, 3).item() == pytest.approx(0.0, abs=1e-6)
    # off by c: teacher forcing sees the error once; a 3-step rollout compounds it: c, 2c, 3c -> mean 2c
    assert teacher_forcing_loss(_toy(0.1), z, a, None).item() == pytest.approx(0.1, abs=1e-5)
    assert rollout_loss(_toy(0.1), z, a, None, 3).item() == pytest.approx(0.2, abs=1e-5)
    out = autoregress(_toy(), z[:, :2], a[:, :4])  # context of 2 frames, 3 new steps
    assert torch.allclose(out, z[:, 2:5], atol=1e-5)


def test_predictor_learns_toy_dynamics():
    """40 AdamW steps on one batch of z_{t+1} = LN(z_t + W a_t) bring the loss far below its start."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    W = torch.randn(2, 16, generator=g)
    pred = ACPredictor(_cfg(depth=1), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(pred.parameters(), lr=1e-2)
    a = torch.randn(8, 3, 2, generator=g)
    z0 = torch.randn(8, 1, 4, 16, generator=g)
    z = F.layer_norm(torch.cat([z0, z0 + (a @ W).cumsum(1).unsqueeze(2)], 1), (16,))
    first = teacher_forcing_loss(pred, z, a, None).item()
    for _ in range(40):
        loss = teacher_forcing_loss(pred, z, a, None) + rollout_loss(pred, z, a, None, 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert teacher_forcing_loss(pred, z, a, None).item() < 0.3 * first


def test_wsd_schedule():
    cfg = WMOptimConfig(steps=100, lr=1.0, start_lr=0.0, final_lr=0.0, warmup_steps=10, anneal_steps=20)
    assert wsd_lr(0, cfg) == 0.0 and wsd_lr(5, cfg) == pytest.approx(0.5)
    assert wsd_lr(10, cfg) == 1.0 and wsd_lr(79, cfg) == 1.0
    assert wsd_lr(90, cfg) == pytest.approx(0.5) and wsd_lr(100, cfg) == 0.0


@pytest.mark.parametrize("kw", [dict(pred_embed_dim=25), dict(grid=(0, 2)), dict(state_dim=-1),
                                dict(pred_embed_dim=8, num_heads=4)])
def test_predictor_config_validation(kw):
    with pytest.raises(ValueError):
        _cfg(**kw)


def test_action_bounds_map_actions_to_unit_range_before_the_encoder():
    from vjepa_cli.config._load import from_dict, to_dict
    from vjepa_cli.config.wm import WMPredictorConfig

    low, high = (0.0, -2.0), (512.0, 6.0)  # PushT-like targets and an offset range
    raw = ACPredictor(_cfg(), generator=torch.Generator().manual_seed(3)).eval()
    normed = ACPredictor(_cfg(action_low=low, action_high=high), generator=torch.Generator().manual_seed(3)).eval()
    normed.load_state_dict(raw.state_dict())  # the bounds are config, not weights: strict loading still holds
    z, a = torch.randn(2, 3, 4, 16), torch.rand(2, 3, 2) * torch.tensor([512.0, 8.0]) + torch.tensor([0.0, -2.0])
    unit = (a - torch.tensor([256.0, 2.0])) / torch.tensor([256.0, 4.0])  # the closed form of the map
    assert unit.abs().max() <= 1
    torch.testing.assert_close(normed(z, a), raw(z, unit))
    assert not torch.allclose(raw(z, a), raw(z, unit))  # the map changes what the predictor sees
    unit_bounds = ACPredictor(_cfg(action_low=(-1.0, -1.0), action_high=(1.0, 1.0))).eval()
    unit_bounds.load_state_dict(raw.state_dict())
    assert torch.equal(unit_bounds(z, unit), raw(z, unit))  # [-1, 1] bounds (Reacher-v5): bit-identical
    cfg = from_dict(ACPredictorConfig, to_dict(normed.cfg), "round trip")  # as a world-model file stores it
    assert cfg.action_low == low and cfg.action_high == high
    assert from_dict(ACPredictorConfig, {k: v for k, v in to_dict(raw.cfg).items() if not k.startswith("action_")},
                     "an earlier file").action_low == ()  # files written before: actions as given
    wp = WMPredictorConfig(pred_embed_dim=24, num_heads=2)
    kw = dict(embed_dim=16, grid=(2, 2), action_dim=2, state_dim=0, max_frames=4, action_low=low, action_high=high)
    assert wp.ac_config(**kw).action_high == high
    assert WMPredictorConfig(pred_embed_dim=24, num_heads=2, action_norm=False).ac_config(**kw).action_low == ()
    with pytest.raises(ValueError, match="action_low"):
        _cfg(action_low=(0.0,), action_high=(1.0,))  # one bound for two action dimensions
    with pytest.raises(ValueError, match="action_low"):
        _cfg(action_low=(1.0, 0.0), action_high=(0.0, 1.0))


def test_action_norm_is_part_of_the_recipe_a_checkpoint_resumes_with():
    from dataclasses import replace

    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.train.wm import recipe_hash

    cfg = WMConfig()
    off = replace(cfg, predictor=replace(cfg.predictor, action_norm=False))
    assert cfg.predictor.action_norm and recipe_hash(cfg) != recipe_hash(off)
    assert recipe_hash(off) == recipe_hash(replace(off, heads=replace(off.heads, reward=True)))  # heads: not hashed
