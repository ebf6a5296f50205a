"""V-JEPA 2.1 rotary positions against slow loops written from the formulas (reference doc section 3.3):
the interleaved frequency layout, the rescaling of spatial positions onto the 16-patch grid, and exactly where
V-JEPA 2's tiled layout and 2.1's interleaved one agree and differ."""

from __future__ import annotations

import math

import pytest
import torch
from _v21_reference import rotation_matrix, token_position

from vjepa_cli.config.model import rope_pretrain_grid
from vjepa_cli.models.pos_embed import RopeTable, rope_axis_dim, rope_positions


def slow_rope(x: torch.Tensor, positions: torch.Tensor, layout: str) -> torch.Tensor:
    """Channel by channel, float64. Inside an axis segment of S channels, channel i turns with the frequency
    w_f = 10000^(-2f/S), f = i // 2 (interleaved, 2.1) or f = i mod S/2 (tiled, V-JEPA 2); the partner of
    (x_2j, x_2j+1) is (-x_2j+1, x_2j)."""
    n, hd = x.shape
    s = rope_axis_dim(hd)
    out = x.clone().double()
    for tok in range(n):
        for axis in range(3):
            p = float(positions[tok, axis])
            for i in range(s):
                f = i // 2 if layout == "interleaved" else i % (s // 2)
                theta = p * 10000.0 ** (-2.0 * f / s)
                c = axis * s + i
                partner = -float(x[tok, c + 1]) if i % 2 == 0 else float(x[tok, c - 1])
                out[tok, c] = float(x[tok, c]) * math.cos(theta) + partner * math.sin(theta)
    return out


def _rotate(x, positions, interleaved):
    n, hd = x.shape
    return RopeTable.build(positions, hd, interleaved=interleaved).apply(x.view(1, 1, n, hd))[0, 0]


@pytest.mark.parametrize("hd", [64, 32, 30, 80])  # 64: 2.1 encoders (S = 20); 32: 2.1 predictors (S = 10)
def test_interleaved_rope_matches_slow_loop(hd):
    g = torch.Generator().manual_seed(hd)
    x = torch.randn(9, hd, generator=g)
    positions = torch.rand(9, 3, generator=g) * 23  # floats, as interpolated positions are
    got = _rotate(x, positions, interleaved=True)
    ref = slow_rope(x, positions, "interleaved")
    assert (got.double() - ref).abs().max() < 2e-5
    # the same rotation as the reference's explicit block-diagonal matrix
    mats = torch.stack([rotation_matrix(tuple(map(float, p)), hd) for p in positions])
    torch.testing.assert_close(got.double(), torch.einsum("nij,nj->ni", mats, x.double()), atol=2e-5, rtol=0)
    s = rope_axis_dim(hd)
    assert torch.equal(got[:, 3 * s:], x[:, 3 * s:])  # leftover channels pass through


def test_tiled_layout_still_matches_its_loop():
    x, positions = torch.randn(6, 64), torch.randint(0, 16, (6, 3))
    assert (_rotate(x, positions, interleaved=False).double() - slow_rope(x, positions, "tiled")).abs().max() < 2e-5


def test_v2_and_v21_rotations_agree_and_differ_where_the_formulas_say():
    """Tiled channel i uses w_(i mod k), interleaved w_(i // 2) (k = S/2): they coincide for i = 0 (both w_0) and
    i = 2k - 1 (both w_(k-1)), and on the pass-through channels; every other rotated channel differs."""
    hd = 64
    s, k = rope_axis_dim(hd), rope_axis_dim(hd) // 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, hd, generator=g)
    positions = torch.randint(1, 16, (16, 3), generator=g)
    v2, v21 = _rotate(x, positions, False), _rotate(x, positions, True)
    same = {c for axis in range(3) for c in (axis * s, axis * s + 2 * k - 1)} | set(range(3 * s, hd))
    diff = (v2 - v21).abs().amax(dim=0)  # per channel, over tokens
    for c in range(hd):
        if c in same:
            assert diff[c] < 1e-6, c
        else:
            assert diff[c] > 1e-3, c
    assert (v2 - v21).abs().max() > 0.1  # features of a V-JEPA 2 implementation would be wrong, not just noisy
    zero = torch.zeros(16, 3)
    assert torch.equal(_rotate(x, zero, False), x) and torch.equal(_rotate(x, zero, True), x)  # position 0


@pytest.mark.parametrize("grid", [(32, 24, 24), (8, 24, 16), (2, 16, 16), (1, 5, 7)])
def test_position_rescaling_matches_formula(grid):
    """h <- h * (g0 - 1) / (H' - 1), w likewise, t unchanged; g0 = 16 for patch 16 (factor 15/23 at 384 px,
    exactly 1 at 256 px)."""
    g0 = rope_pretrain_grid(16)
    assert g0 == 16 and rope_pretrain_grid(14) == 18  # the official int(252 / 14)
    ids = torch.arange(grid[0] * grid[1] * grid[2])
    got = rope_positions(ids, grid, interp_grid=g0)
    ref = torch.tensor([token_position(int(n), grid, g0) for n in ids], dtype=torch.float64)
    assert (got.double() - ref).abs().max() < 1e-5
    assert got[:, 1].max() == g0 - 1 and got[:, 2].max() == g0 - 1  # the last row / column lands on 15
    assert torch.equal(got[:, 0], (ids // (grid[1] * grid[2])).float())  # time is never scaled
    raw = rope_positions(ids, grid)
    if grid[1:] == (16, 16):
        assert torch.equal(got, raw)  # the pretraining grid itself: nothing moves


def test_position_rescaling_needs_two_patches_per_side():
    with pytest.raises(ValueError, match="at least 2 patches per side"):
        rope_positions(torch.arange(4), (1, 1, 4), interp_grid=16)  # official: a division by zero (NaN)


def test_masked_ids_keep_their_grid_positions():
    grid = (2, 24, 24)
    ids = torch.tensor([[5, 600, 1151], [0, 23, 24]])
    got = rope_positions(ids, grid, interp_grid=16)
    ref = torch.tensor([[token_position(int(n), grid, 16) for n in row] for row in ids], dtype=torch.float64)
    assert (got.double() - ref).abs().max() < 1e-5
    table = RopeTable.from_ids(ids, grid, 64, interleaved=True, interp_grid=16)
    assert table.cos.shape == (2, 1, 3, 64)
