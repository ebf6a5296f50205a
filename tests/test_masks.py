"""Mask generators and the collator: official block sizes, invariants, reproducibility, apply_masks."""

from __future__ import annotations

import math

import pytest
import torch

from vjepa_cli.config.mask import BlockMaskConfig, MaskConfig
from vjepa_cli.data.masks import (
    MaskCollator,
    MaskedBatch,
    apply_masks,
    block_size,
    future_masks,
    future_steps,
    mask_generator,
    multiblock_map,
    multiblock_masks,
    sample_masks,
    split_masks,
    tube_masks,
)

A = BlockMaskConfig()
B_LONG = BlockMaskConfig(num_blocks=2, spatial_scale=(0.7, 0.7))


def _check_pair(ctx: torch.Tensor, tgt: torch.Tensor, n: int) -> None:
    assert ctx.dtype == torch.long and tgt.dtype == torch.long
    assert ctx.shape[0] == tgt.shape[0]
    assert ctx.shape[1] > 0 and tgt.shape[1] > 0
    for c, t in zip(ctx.tolist(), tgt.tolist(), strict=True):
        assert c == sorted(c) and len(set(c)) == len(c)
        assert t == sorted(t) and len(set(t)) == len(t)
        assert not set(c) & set(t)
        assert all(0 <= i < n for i in c + t)


@pytest.mark.parametrize(("grid", "keeps"), [((8, 14, 14), (29, 137)), ((8, 16, 16), (38, 179))])
def test_block_sizes_match_official_figures(grid, keeps):
    g = mask_generator(0, 0)
    for cfg, keep in zip((A, B_LONG), keeps, strict=True):
        for _ in range(20):
            t, h, w = block_size(cfg, grid, g)
            ar_lo, ar_hi = cfg.aspect_ratio
            assert t == grid[0]  # temporal scale 1.0
            # h = round(sqrt(keep * ar)), w = round(sqrt(keep / ar)) for some ar in [0.75, 1.5]
            assert round(math.sqrt(keep * ar_lo)) <= h <= round(math.sqrt(keep * ar_hi))
            assert round(math.sqrt(keep / ar_hi)) <= w <= round(math.sqrt(keep / ar_lo))
            assert abs(h * w - keep) <= h + w  # area close to `keep`


def test_block_size_clipped_and_temporal_minimum():
    cfg = BlockMaskConfig(num_blocks=1, spatial_scale=(1.0, 1.0), temporal_scale=(0.01, 0.01), aspect_ratio=(1.5, 1.5))
    t, h, w = block_size(cfg, (4, 4, 6), mask_generator(1, 2))
    assert t == 1  # max(1, int(4 * 0.01))
    assert h == 4  # round(sqrt(24 * 1.5)) = 6, clipped to H' = 4
    assert w == 4  # round(sqrt(24 / 1.5)) = 4


def test_multiblock_disjoint_cover_and_equal_lengths():
    grid, b = (8, 14, 14), 6
    n = math.prod(grid)
    g = mask_generator(3, 7)
    for cfg in (A, B_LONG):
        ctx, tgt = multiblock_masks(cfg, grid, b, g)
        _check_pair(ctx, tgt, n)
        # Before truncation context + target = every token: so the kept lists cover at most n and the
        # shortest sample loses nothing.
        assert ctx.shape[1] + tgt.shape[1] <= n
        assert tgt.shape[1] >= 1


def test_multiblock_targets_are_union_of_blocks_of_the_drawn_size():
    # Batch of 1: no truncation, so context + target is the whole grid and the targets are exactly the union
    # of num_blocks boxes of the drawn size, each spanning all of time (temporal scale 1).
    grid = (4, 8, 8)
    cfg = BlockMaskConfig(num_blocks=1, spatial_scale=(0.25, 0.25), aspect_ratio=(1.0, 1.0))
    ctx, tgt = multiblock_masks(cfg, grid, 1, mask_generator(0, 5))
    assert ctx.shape[1] + tgt.shape[1] == 256
    t_ids = tgt[0]
    hw = t_ids % 64
    rows, cols = hw // 8, hw % 8
    assert tgt.shape[1] == 4 * 16  # one 4x4 block (keep 16, ar 1) in each of 4 time steps
    assert rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3


def test_max_temporal_keep_makes_late_steps_targets():
    grid = (4, 4, 4)
    cfg = BlockMaskConfig(num_blocks=1, spatial_scale=(0.1, 0.1), max_temporal_keep=0.5)
    masked = multiblock_map(cfg, grid, 3, mask_generator(0, 0))
    assert masked[:, 32:].all()  # time steps 2, 3 (ids 32..63) are always targets
    assert not masked[:, :32].all(1).any()  # the first two steps keep some context
    ctx, _ = multiblock_masks(cfg, grid, 3, mask_generator(0, 0))
    assert int(ctx.max()) < 32


def test_resample_when_context_empty():
    # Blocks as big as the grid leave no context at all: the generator must give up with a clear error.
    cfg = BlockMaskConfig(num_blocks=2, spatial_scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0))
    with pytest.raises(ValueError, match="no context"):
        multiblock_masks(cfg, (2, 2, 2), 2, mask_generator(0, 0), max_tries=5)
    # 2 blocks at 0.7 on a 3x3 grid often cover everything (a 3x2 or 2x3 block twice); those samples are redrawn.
    cfg = BlockMaskConfig(num_blocks=2, spatial_scale=(0.7, 0.7))
    masked = multiblock_map(cfg, (2, 3, 3), 64, mask_generator(0, 1))
    assert (~masked).any(1).all()


def test_split_masks_against_reference():
    g = torch.Generator().manual_seed(0)
    masked = torch.rand(7, 50, generator=g) < torch.rand(7, 1, generator=g)
    masked[:, 0], masked[:, 1] = False, True  # every row has context and targets
    for max_keep in (None, 3):
        ctx, tgt = split_masks(masked, max_keep)
        rows_ctx = [[i for i in range(50) if not masked[b, i]] for b in range(7)]
        rows_tgt = [[i for i in range(50) if masked[b, i]] for b in range(7)]
        kc = min(len(r) for r in rows_ctx) if max_keep is None else min(3, min(len(r) for r in rows_ctx))
        kt = min(len(r) for r in rows_tgt)
        assert ctx.tolist() == [r[:kc] for r in rows_ctx]  # the lowest ids are kept, the highest dropped
        assert tgt.tolist() == [r[:kt] for r in rows_tgt]


def test_tube_ratio_and_structure():
    grid, b = (4, 10, 10), 5
    ctx, tgt = tube_masks(0.9, grid, b, mask_generator(0, 0))
    assert ctx.shape == (b, 4 * 10) and tgt.shape == (b, 4 * 90)
    _check_pair(ctx, tgt, 400)
    for row in ctx.tolist():
        spatial = [set(i % 100 for i in row if i // 100 == t) for t in range(4)]
        assert all(s == spatial[0] for s in spatial) and len(spatial[0]) == 10  # same positions every frame
    assert not torch.equal(ctx[0], ctx[1])  # different per sample


def test_future_masks_structure():
    ctx, tgt = future_masks((4, 2, 3), 1, 2)
    assert ctx.tolist() == [list(range(6))] * 2
    assert tgt.tolist() == [list(range(6, 24))] * 2
    assert future_steps(8, 0.5) == 4 and future_steps(8, 0.01) == 1 and future_steps(8, 0.99) == 7
    with pytest.raises(ValueError):
        future_steps(1, 0.5)
    with pytest.raises(ValueError):
        future_masks((4, 2, 2), 4, 1)


def test_mixed_and_kinds_counts():
    grid = (4, 4, 4)
    for kind, n in (("multiblock", 2), ("tube", 1), ("future", 1), ("mixed", 3)):
        cfg = MaskConfig(kind=kind)
        ctx, tgt = sample_masks(cfg, grid, 3, mask_generator(0, 0))
        assert len(ctx) == len(tgt) == n == cfg.num_masks
        for c, t in zip(ctx, tgt, strict=True):
            _check_pair(c, t, 64)
    ctx, tgt = sample_masks(MaskConfig(kind="mixed", future_context=0.25), grid, 3, mask_generator(0, 0))
    assert torch.equal(ctx[-1][0], torch.arange(16)) and torch.equal(tgt[-1][0], torch.arange(16, 64))


def _samples(b: int, step: int) -> list[dict]:
    return [{"clip": torch.full((3, 4, 8, 8), i, dtype=torch.uint8), "step": step, "label": i,
             "failures": [("bad.mp4", "decode")] if i == 1 else []} for i in range(b)]


def test_collator_output_and_reproducibility():
    cfg = MaskConfig()
    col = MaskCollator(cfg, (8, 14, 14), seed=5)
    out = col(_samples(4, step=11))
    assert isinstance(out, MaskedBatch)
    assert out.clips.shape == (4, 3, 4, 8, 8) and out.clips.dtype == torch.uint8
    assert out.labels.tolist() == [0, 1, 2, 3] and out.labels.dtype == torch.long
    assert out.failures == [("bad.mp4", "decode")]
    assert len(out.context_masks) == len(out.target_masks) == 2
    # Same (seed, step) -> same masks, whatever was drawn before and by which collator instance.
    other = MaskCollator(cfg, (8, 14, 14), seed=5)
    for s in (0, 3, 99):
        other(_samples(4, step=s))
    again = other(_samples(4, step=11))
    for a, b in zip(out.context_masks + out.target_masks, again.context_masks + again.target_masks, strict=True):
        assert torch.equal(a, b)
    # Another step or seed -> other masks.
    diff = col(_samples(4, step=12))
    assert any(not torch.equal(a, b) or a.shape != b.shape for a, b in zip(out.context_masks, diff.context_masks, strict=True))
    diff_seed = MaskCollator(cfg, (8, 14, 14), seed=6)(_samples(4, step=11))
    assert any(a.shape != b.shape or not torch.equal(a, b)
               for a, b in zip(out.target_masks, diff_seed.target_masks, strict=True))


def test_collator_unknown_step_and_bad_grid():
    col = MaskCollator(MaskConfig(), (4, 4, 4), seed=0)
    a = col([{"clip": torch.zeros(3, 8, 64, 64, dtype=torch.uint8), "step": -1}])
    assert a.labels.tolist() == [-1]
    with pytest.raises(ValueError):
        MaskCollator(MaskConfig(kind="future"), (1, 4, 4), seed=0)


def test_apply_masks_matches_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 5, generator=g)
    masks = [torch.randint(0, 20, (3, 4), generator=g), torch.randint(0, 20, (3, 4), generator=g)]
    out = apply_masks(x, masks)
    ref = torch.stack([x[b, m[b]] for m in masks for b in range(3)])
    assert out.shape == (6, 4, 5)
    assert torch.equal(out, ref)
    assert torch.equal(apply_masks(x, masks[:1]), ref[:3])


def test_collator_ranks_slice_the_global_draw():
    cfg = MaskConfig(kind="mixed")
    whole = MaskCollator(cfg, (4, 6, 6), seed=1).masks(7, 6)
    parts = [MaskCollator(cfg, (4, 6, 6), seed=1, rank=r, world_size=3).masks(7, 2) for r in range(3)]
    for i in range(2):  # context, target
        for j in range(cfg.num_masks):
            assert torch.equal(whole[i][j], torch.cat([p[i][j] for p in parts]))
    with pytest.raises(ValueError):
        MaskCollator(cfg, (4, 6, 6), seed=1, rank=3, world_size=3)
