"""The packed training step (one encoder and one predictor pass for all mask pairs) against the per-mask one:
same loss and same gradient on every parameter, up to fp32 rounding, for V-JEPA 1 (sin-cos), V-JEPA 2 (RoPE,
sorted tokens) and V-JEPA 2.1 (hierarchical, context head, modality vectors), on masks of different lengths."""

from __future__ import annotations

import pytest
import torch

from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.data.masks import MaskCollator, apply_masks
from vjepa_cli.models import build_encoder, build_predictor
from vjepa_cli.models.layers import DropPath
from vjepa_cli.models.packed import Packed
from vjepa_cli.train.jepa import JepaModel, target_features
from vjepa_cli.train.jepa21 import Jepa21Model, target_features21

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = (4, 4, 4)  # 8 frames of 64 px, tubelet 2, patch 16
TINY = dict(arch="vit_tiny", embed_dim=48, depth=2, num_heads=3, num_frames=8, img_size=64, pred_embed_dim=24,
            pred_depth=2, pred_num_heads=2)
V21 = dict(pos_embed="rope", levels=(0, 1), pred_levels=2, rope_interleaved=True, modality_embed=True,
           image_embed=True, pred_context_head=True)


def _models(cfg: ModelConfig):
    gen = torch.Generator().manual_seed(0)
    enc, pred = build_encoder(cfg, generator=gen), build_predictor(cfg, generator=gen)
    with torch.no_grad():  # distinct mask tokens and non-zero biases: a swapped token or a lost bias shows
        for p in (*pred.mask_tokens, *(p for n, p in enc.named_parameters() if n.endswith("bias"))):
            p.normal_(0, 0.5, generator=gen)
    return enc, pred


def _masks(kind: str = "multiblock", batch: int = 3):
    """Official multi-block masks (8 x 0.15, 2 x 0.7; `mixed` adds a causal pair) whose pairs differ in length."""
    ctx, tgt = MaskCollator(MaskConfig(kind=kind), GRID, seed=0).masks(5, batch)
    assert len({m.shape[1] for m in ctx}) > 1 and len({m.shape[1] for m in tgt}) > 1
    return ctx, tgt


def _loss_and_grads(model, *args, **kw):
    model.zero_grad(set_to_none=True)
    loss = model(*args, **kw)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(model, *args, unused: tuple[str, ...] = (), **kw):
    """Loss and gradients of both paths agree; every parameter but those whose name holds one of `unused` (the
    other modality's embedders) gets a gradient."""
    model.mask_batching = "per_mask"
    ref_loss, ref = _loss_and_grads(model, *args, **kw)
    model.mask_batching = "packed"
    loss, got = _loss_and_grads(model, *args, **kw)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-7)
    want = {n for n, _ in model.named_parameters() if not any(u in n for u in unused)}
    assert got.keys() == ref.keys() == want
    for name, g in ref.items():
        scale = g.abs().max().item()
        torch.testing.assert_close(got[name], g, rtol=1e-5, atol=1e-5 * scale + 1e-9, msg=name)


@pytest.mark.parametrize("pos", ["sincos", "rope"])
@pytest.mark.parametrize("kind", ["multiblock", "mixed"])
def test_packed_step_equals_per_mask_step(pos, kind):
    cfg = ModelConfig(**TINY, pos_embed=pos, drop_path_rate=0.0)
    enc, pred = _models(cfg)
    clips = torch.randn(3, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    ctx, tgt = _masks(kind)
    h = target_features(enc, clips)
    _assert_same(JepaModel(enc, pred).train(), clips, h, ctx, tgt, GRID)


def test_packed_step_with_activation_checkpointing_equals_per_mask_step():
    enc, pred = _models(ModelConfig(**TINY, pos_embed="rope", checkpointing=True))
    clips = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(4))
    ctx, tgt = _masks(batch=2)
    _assert_same(JepaModel(enc, pred).train(), clips, target_features(enc, clips), ctx, tgt, GRID)


@pytest.mark.parametrize("modality", ["video", "image"])
def test_packed_21_step_equals_per_mask_step(modality):
    enc, pred = _models(ModelConfig(**TINY, **V21))
    grid = GRID if modality == "video" else (1, 4, 4)
    clips = torch.randn(2, 3, 8 if modality == "video" else 1, 64, 64, generator=torch.Generator().manual_seed(2))
    if modality == "video":
        ctx, tgt = _masks(batch=2)
    else:  # two image masks of different lengths
        ctx = [torch.tensor([[0, 1, 2, 5, 9]] * 2), torch.tensor([[3, 15]] * 2)]
        tgt = [torch.tensor([[4, 6, 7]] * 2), torch.tensor([[0, 1, 2, 12, 13, 14]] * 2)]
    h = target_features21(enc, clips, 2)  # (B, N, 2 * 48)
    model = Jepa21Model(enc, pred, hierarchical=True, predict_context=True).train()
    unused = ("img",) if modality == "video" else ("encoder.patch_embed.", "video_mod")
    _assert_same(model, clips, h, ctx, tgt, grid, lam=0.5, modality=modality, unused=unused)


def test_a_swapped_mask_token_is_caught():
    """The comparison is sharp enough to see the packed path use the wrong learned mask token."""
    enc, pred = _models(ModelConfig(**TINY))
    clips = torch.randn(3, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    ctx, tgt = _masks()
    h = target_features(enc, clips)
    ref = JepaModel(enc, pred, mask_batching="per_mask")(clips, h, ctx, tgt, GRID)
    zs = enc(clips, masks=ctx, split=True)
    preds = pred(zs, ctx, tgt, mask_index=[1, 0], grid=GRID)
    wrong = sum((p - apply_masks(h, [t])).abs().mean() for p, t in zip(preds, tgt, strict=True)) / 2
    assert not torch.allclose(wrong, ref, rtol=1e-4)


def test_split_encoder_outputs_equal_one_pass_per_mask():
    enc, _ = _models(ModelConfig(**TINY, pos_embed="rope"))
    clips = torch.randn(3, 3, 8, 64, 64, generator=torch.Generator().manual_seed(3))
    ctx, _ = _masks()
    with torch.no_grad():
        for got, m in zip(enc(clips, masks=ctx, split=True), ctx, strict=True):
            torch.testing.assert_close(got, enc(clips, masks=[m]), rtol=1e-5, atol=1e-5)


def test_packed_drop_path_drops_whole_samples():
    layout = Packed(((2, 3), (3, 1)))
    x = torch.ones(layout.rows, 4)
    drop = DropPath(0.5).train()
    torch.manual_seed(0)
    out = drop(x, layout)
    per_sample = [s for seg in layout.unpack(out) for s in seg]  # 5 samples
    for s in per_sample:
        assert torch.all(s == 0) or torch.all(s == 2)
    assert {float(s[0, 0]) for s in per_sample} == {0.0, 2.0}


def test_unknown_mask_batching_is_refused():
    enc, pred = _models(ModelConfig(**TINY))
    with pytest.raises(ValueError, match="mask_batching"):
        JepaModel(enc, pred, mask_batching="padded")
