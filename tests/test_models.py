"""Encoder, predictor, layers and probe heads: shapes over every preset, masks, positions, init, names."""

from __future__ import annotations

import math

import pytest
import torch

from vjepa_cli.config.model import ARCHS, ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models import build_encoder, build_predictor, list_archs
from vjepa_cli.models.layers import Attention, Block
from vjepa_cli.models.pooler import AttentiveClassifier, AttentivePooler
from vjepa_cli.models.pos_embed import RopeTable

TINY = dict(num_frames=4, img_size=32, pred_embed_dim=64, pred_num_heads=4, pred_depth=1)


def tiny_cfg(arch: str = "vit_tiny", pos: str = "sincos", **kw) -> ModelConfig:
    return ModelConfig(arch=arch, depth=kw.pop("depth", 1), pos_embed=pos, **{**TINY, **kw})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Both position schemes on the small presets; one each on the wide ones (depth 1, real width) to stay fast.
ARCH_POS = [(a, p) for a in ("vit_tiny", "vit_small", "vit_base") for p in ("sincos", "rope")]
ARCH_POS += [("vit_large", "sincos"), ("vit_huge", "rope"), ("vit_giant", "sincos"), ("vit_giant_xformers", "rope")]
ARCH_POS += [(a, "rope") for a in ARCHS if a not in {x for x, _ in ARCH_POS}]  # presets added later


@pytest.mark.parametrize("arch,pos", ARCH_POS)
def test_every_arch_shapes_masks_image_backward(arch, pos):
    cfg = tiny_cfg(arch, pos)
    dim = cfg.resolved_sizes()[0]
    enc, pred = build_encoder(cfg, gen()), build_predictor(cfg, gen(1))
    x = torch.randn(2, 3, 4, 32, 32, generator=gen(2))  # grid (2, 2, 2): 8 tokens
    assert enc(x).shape == (2, 8, dim)
    assert enc(x[:, :, 0]).shape == (2, 4, dim)  # (B, C, H, W) image -> one tubelet
    assert enc(x[:, :, :1]).shape == (2, 4, dim)
    ctx = [torch.tensor([[0, 1, 5], [2, 3, 7]]), torch.tensor([[4, 5, 6], [0, 1, 2]])]
    z = enc(x, ctx)  # (2 masks * B, K, D)
    assert z.shape == (4, 3, dim)
    tgt = torch.tensor([[2, 3], [0, 1]])
    out = pred(z[:2], ctx[0], tgt, mask_index=1)
    assert out.shape == (2, 2, dim)
    loss = out.abs().mean() + z.abs().mean()
    loss.backward()
    for name, p in [*enc.named_parameters(), *pred.named_parameters()]:
        if name == "mask_tokens.0":  # only mask token 1 was used
            assert p.grad is None
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert torch.isfinite(out).all() and torch.isfinite(z).all()


def test_state_dict_names_are_official():
    cfg = tiny_cfg("vit_large", depth=2, num_frames=16, img_size=224)
    enc = build_encoder(cfg)
    sd = enc.state_dict()
    assert sd["pos_embed"].shape == (1, 1568, 1024)
    assert sd["patch_embed.proj.weight"].shape == (1024, 3, 2, 16, 16)
    assert sd["blocks.1.attn.qkv.weight"].shape == (3072, 1024)
    per_block = ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
    want = {"pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    want |= {f"blocks.{i}.{m}.{p}" for i in range(2) for m in per_block for p in ("weight", "bias")}
    assert set(sd) == want
    rope_sd = build_encoder(tiny_cfg(pos="rope")).state_dict()
    assert not any("pos_embed" in k for k in rope_sd)
    psd = build_predictor(tiny_cfg(pred_depth=2, pred_num_mask_tokens=3)).state_dict()
    pwant = {"predictor_pos_embed", "mask_tokens.0", "mask_tokens.1", "mask_tokens.2"}
    pwant |= {f"predictor_{n}.{p}" for n in ("embed", "norm", "proj") for p in ("weight", "bias")}
    pwant |= {f"predictor_blocks.{i}.{m}.{p}" for i in range(2) for m in per_block for p in ("weight", "bias")}
    assert set(psd) == pwant
    assert psd["predictor_pos_embed"].shape == (1, 2 * 2 * 2, 64)


def test_unknown_arch_and_list():
    assert list_archs() == list(ARCHS)
    with pytest.raises(VjepaError, match="vit_small"):
        build_encoder("vit_nope")


def test_all_ids_equals_no_mask_and_unequal_masks_raise():
    for pos in ("sincos", "rope"):
        enc = build_encoder(tiny_cfg(pos=pos, depth=2), gen()).eval()
        x = torch.randn(2, 3, 4, 32, 32, generator=gen(3))
        full = enc(x)
        torch.testing.assert_close(enc(x, [torch.arange(8).expand(2, -1)]), full, atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="different token counts"):
            enc(x, [torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)])


def manual_encode(enc, x, positions, ids=None):
    """Reference path: patch embed, keep `ids`, one block with RoPE at explicitly given positions, norm."""
    tokens = enc.patch_embed(x)
    if ids is not None:
        tokens = torch.stack([tokens[b, ids[b]] for b in range(len(ids))])
    table = RopeTable.build(positions, enc.embed_dim // enc.num_heads)
    return enc.norm(enc.blocks[0](tokens, rope=table))


def test_rope_grid_from_non_square_input_and_masked_positions():
    enc = build_encoder(tiny_cfg(pos="rope"), gen()).eval()
    x = torch.randn(1, 3, 6, 32, 80, generator=gen(4))  # grid (3, 2, 5), not the config's (2, 2, 2)
    positions = torch.tensor([(t, h, w) for t in range(3) for h in range(2) for w in range(5)])
    torch.testing.assert_close(enc(x), manual_encode(enc, x, positions), atol=1e-5, rtol=0)
    ids = torch.tensor([[3, 11, 17, 29], [0, 9, 10, 24]])
    xb = x.expand(2, -1, -1, -1, -1)
    pos_ids = torch.stack([positions[row] for row in ids])  # (B, K, 3): true (t, h, w) of the kept tokens
    torch.testing.assert_close(enc(xb, [ids]), manual_encode(enc, xb, pos_ids, ids), atol=1e-5, rtol=0)
    # positions matter: the same tokens placed elsewhere give another output
    assert (enc(xb, [ids]) - manual_encode(enc, xb, pos_ids.flip(1), ids)).abs().max() > 1e-3


def test_sincos_other_grid_interpolates():
    enc = build_encoder(tiny_cfg(), gen()).eval()
    x = torch.randn(1, 3, 8, 48, 32, generator=gen(5))  # grid (4, 3, 2) vs table (2, 2, 2)
    assert enc(x).shape == (1, 24, enc.embed_dim)
    with pytest.raises(ValueError, match="multiples"):
        enc(torch.randn(1, 3, 4, 30, 32))


def test_return_layers_and_checkpointing():
    cfg = tiny_cfg(pos="rope", depth=3)
    enc = build_encoder(cfg, gen()).eval()
    x = torch.randn(2, 3, 4, 32, 32, generator=gen(6))
    out, hidden = enc.forward_features(x, return_layers=[0, -1])
    assert len(hidden) == 2 and hidden[0].shape == out.shape
    torch.testing.assert_close(enc.norm(hidden[1]), out)
    assert (hidden[0] - hidden[1]).abs().max() > 0
    ck = build_encoder(ModelConfig(**{**cfg.__dict__, "checkpointing": True}), gen()).train()
    ref = build_encoder(cfg, gen()).train()
    ck(x).sum().backward()
    ref(x).sum().backward()
    for (n, a), (_, b) in zip(ck.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=n)


def test_predictor_mask_index_sorting_and_target_order():
    for pos in ("sincos", "rope"):
        cfg = tiny_cfg(pos=pos, pred_depth=2, pred_sort_tokens=True)
        pred = build_predictor(cfg, gen()).eval()
        assert all(float(t.detach().abs().sum()) == 0.0 for t in pred.mask_tokens)
        g = gen(7)
        with torch.no_grad():
            for t in pred.mask_tokens:
                t.normal_(generator=g)
        ctx = torch.randn(2, 3, 192, generator=gen(8))
        cid, tid = torch.tensor([[0, 4, 6], [1, 2, 7]]), torch.tensor([[5, 1, 3], [0, 6, 3]])
        a = pred(ctx, cid, tid, mask_index=0)
        assert (a - pred(ctx, cid, tid, mask_index=1)).abs().max() > 1e-3
        torch.testing.assert_close(pred(ctx, cid, tid, mask_index=2), a)  # modulo the 2 tokens
        perm = torch.tensor([2, 0, 1])
        torch.testing.assert_close(pred(ctx, cid, tid[:, perm]), a[:, perm], atol=1e-5, rtol=0)
        unsorted = build_predictor(ModelConfig(**{**cfg.__dict__, "pred_sort_tokens": False}), gen()).eval()
        unsorted.load_state_dict(pred.state_dict())
        torch.testing.assert_close(unsorted(ctx, cid, tid), a, atol=1e-5, rtol=0)  # sorting is undone exactly


def test_init_rescale_generator_and_zero_mask_tokens():
    cfg = ModelConfig(arch="vit_small", depth=6, num_frames=2, img_size=32, pred_depth=1)
    enc = build_encoder(cfg, gen(0))
    stds = [float(b.attn.proj.weight.detach().std()) for b in enc.blocks]
    for layer, s in enumerate(stds, 1):
        assert s == pytest.approx(0.02 / math.sqrt(2 * layer), rel=0.05)
    assert float(enc.blocks[0].attn.qkv.weight.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert float(enc.blocks[0].attn.qkv.bias.detach().abs().sum()) == 0 and float(enc.norm.weight.detach().mean()) == 1
    again, other = build_encoder(cfg, gen(0)), build_encoder(cfg, gen(1))
    assert torch.equal(enc.blocks[3].mlp.fc1.weight, again.blocks[3].mlp.fc1.weight)
    assert not torch.equal(enc.blocks[3].mlp.fc1.weight, other.blocks[3].mlp.fc1.weight)
    pred = build_predictor(cfg, gen(0))
    assert all(float(t.detach().abs().sum()) == 0.0 for t in pred.mask_tokens)


def test_attention_masks_and_block_kwargs():
    attn = Attention(dim=32, num_heads=4, use_rope=False)
    x = torch.randn(2, 5, 32, generator=gen(9))
    eye = torch.eye(5, dtype=torch.bool)  # each token sees only itself -> output = proj(v)
    v = attn.qkv(x)[..., 64:]
    torch.testing.assert_close(attn(x, attn_mask=eye), attn.proj(v), atol=1e-5, rtol=0)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    blk = Block(dim=32, num_heads=4, mlp_ratio=2.0, drop_path=0.1, use_rope=True).eval()
    table = RopeTable.build(torch.randint(0, 4, (5, 3)), 8)
    y = blk(x, rope=table, attn_mask=causal)
    y2 = blk(torch.cat([x[:, :3], torch.randn(2, 2, 32)], 1), rope=table, attn_mask=causal)
    torch.testing.assert_close(y[:, :3], y2[:, :3])  # earlier tokens do not see later ones
    with pytest.raises(ValueError, match="rope"):
        blk(x)


@pytest.mark.parametrize("v2", [False, True])
def test_poolers(v2):
    clf = AttentiveClassifier(embed_dim=32, num_heads=4, num_classes=5, depth=3, v2_style=v2, generator=gen())
    x = torch.randn(3, 7, 32, generator=gen(10))
    assert clf(x).shape == (3, 5)
    keys = set(clf.state_dict())
    assert "pooler.query_tokens" in keys and "linear.weight" in keys
    assert ("pooler.cross_attention_block.xattn.proj.weight" in keys) is not v2
    assert {"pooler.blocks.1.attn.qkv.weight", "pooler.cross_attention_block.xattn.kv.weight"} <= keys
    assert float(clf.pooler.query_tokens.detach().std()) > 0.005
    pooled = AttentivePooler(embed_dim=32, num_heads=4, num_queries=2, v2_style=v2)(x)
    assert pooled.shape == (3, 2, 32)
    # v2 runs the self-attention blocks over the tokens: a token permutation leaves the pooled output unchanged
    perm = torch.randperm(7, generator=gen(11))
    torch.testing.assert_close(clf(x[:, perm]), clf(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_proj,queries,heads", [(True, 1, 4), (False, 2, 4), (True, 8, 8)])
def test_cross_attention_matches_explicit_keys_and_values(use_proj, queries, heads):
    """The pool-first path (few queries) and the SDPA path (h * n >= D, or a mask) both equal attention
    written out with explicit keys and values, outputs and gradients, in float64."""
    from vjepa_cli.models.layers import CrossAttention

    d = 32
    att = CrossAttention(d, heads, use_proj=use_proj).double()
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(torch.randn(p.shape, generator=gen(20), dtype=torch.float64) * 0.3)
    q = torch.randn(3, queries, d, generator=gen(21), dtype=torch.float64)
    x = torch.randn(3, 11, d, generator=gen(22), dtype=torch.float64, requires_grad=True)

    def explicit():
        hd = d // heads
        qq = (q @ att.q.weight.T + att.q.bias).view(3, queries, heads, hd).transpose(1, 2)
        kv = x @ att.kv.weight.T + att.kv.bias
        k, v = (t.reshape(3, 11, heads, hd).transpose(1, 2) for t in kv.split(d, dim=-1))
        a = torch.softmax(qq @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        out = (a @ v).transpose(1, 2).reshape(3, queries, d)
        return out @ att.proj.weight.T + att.proj.bias if use_proj else out

    def grads(fn):
        att.zero_grad()
        x.grad = None
        fn().pow(2).sum().backward()
        return [x.grad.clone()] + [p.grad.clone() for p in att.parameters()]

    ref = explicit()
    no_mask = lambda: att(q, x)  # noqa: E731
    masked = lambda: att(q, x, attn_mask=torch.zeros(queries, 11, dtype=torch.float64))  # noqa: E731 - SDPA path
    for fn in (no_mask, masked):
        torch.testing.assert_close(fn(), ref, rtol=1e-10, atol=1e-10)
        for g, g_ref in zip(grads(fn), grads(explicit), strict=True):
            torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)
    assert float((ref - att(q, x + 1.0)).detach().abs().max()) > 1e-3  # sensitive to the tokens


@pytest.mark.parametrize("queries", [1, 16])
def test_cross_attention_block_folds_the_norm_affine_exactly(queries):
    """The block's pool-first path (LN1 affine folded into the attention) equals LN1 then attention."""
    from vjepa_cli.models.layers import CrossAttentionBlock

    blk = CrossAttentionBlock(32, 4).double()  # head_dim 8: 1 query pools first, 16 take SDPA
    with torch.no_grad():
        for p in blk.parameters():
            p.copy_(torch.randn(p.shape, generator=gen(23), dtype=torch.float64) * 0.3)
    q = torch.randn(2, queries, 32, generator=gen(24), dtype=torch.float64)
    x = torch.randn(2, 9, 32, generator=gen(25), dtype=torch.float64) * 3 + 1
    assert blk.xattn.pools_first(queries) is (queries == 1)

    def grads(out):
        blk.zero_grad()
        out.pow(2).sum().backward()
        return [p.grad.clone() for p in blk.parameters()]

    attn_mask = torch.zeros(queries, 9, dtype=torch.float64)  # forces the SDPA path on LN1's output
    ref = q + blk.xattn(q, blk.norm1(x), attn_mask=attn_mask)
    ref = ref + blk.mlp(blk.norm2(ref))
    g_ref = grads(ref)
    out = blk(q, x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for g, gr in zip(grads(out), g_ref, strict=True):
        torch.testing.assert_close(g, gr, rtol=1e-9, atol=1e-10)
    assert float(blk.norm1.bias.grad.abs().max()) > 0  # the folded affine still learns


def test_no_grad_path_equals_autograd_path():
    enc = build_encoder(tiny_cfg(pos="rope", depth=2), gen()).eval()
    x = torch.randn(2, 3, 4, 32, 32, generator=gen(12))
    with_grad = enc(x)
    assert with_grad.requires_grad
    with torch.inference_mode():
        torch.testing.assert_close(enc(x), with_grad.detach())  # in-place GELU etc. only without autograd


@pytest.mark.parametrize("shape", [(2, 3, 4, 32, 32), (1, 3, 5, 40, 36)])  # the second leaves remainders
@pytest.mark.parametrize("channels_last", [False, True])
def test_patch_embed_gemm_equals_the_conv3d(shape, channels_last):
    from vjepa_cli.models.layers import PatchEmbed3D

    pe = PatchEmbed3D(3, 24, patch_size=16, tubelet_size=2)
    x = torch.randn(*shape, generator=gen(13), requires_grad=True)
    xin = x.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3) if channels_last else x
    ref = pe.proj(xin).flatten(2).transpose(1, 2)  # (B, N, D)
    out = pe(xin)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    (g,) = torch.autograd.grad(out.square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-5)


def _plain_block(blk: Block, x: torch.Tensor, **kw) -> torch.Tensor:
    """The block as two plain residual sums over its sublayers."""
    h = x + blk.attn(blk.norm1(x), **kw)
    return h + blk.mlp(blk.norm2(h))


def test_block_residual_in_the_gemm_equals_the_plain_sum():
    blk = Block(dim=32, num_heads=4, mlp_ratio=2.0, use_rope=True).eval()
    x = torch.randn(2, 6, 32, generator=gen(14))
    table = RopeTable.build(torch.randint(0, 4, (6, 3), generator=gen(15)), 8)
    ref = _plain_block(blk, x, rope=table)
    torch.testing.assert_close(blk(x, rope=table), ref, atol=1e-6, rtol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(blk(x, rope=table), ref.detach(), atol=1e-6, rtol=1e-6)


def test_block_under_autocast_keeps_the_residual_stream_in_fp32():
    blk = Block(dim=32, num_heads=4, mlp_ratio=2.0)
    x = torch.randn(2, 6, 32, generator=gen(16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = blk(x)
        ref = _plain_block(blk, x)
    assert y.dtype == torch.float32 == ref.dtype
    torch.testing.assert_close(y, ref)
