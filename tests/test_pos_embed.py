"""Position encodings against slow re-derivations written from the spec (loops over tokens and channels)."""

from __future__ import annotations

import math

import pytest
import torch

from vjepa_cli.models.pos_embed import (
    RopeTable,
    grid_positions,
    ids_to_positions,
    interpolate_sincos,
    rope_axis_dim,
    sincos_3d,
    sincos_axis_dims,
)


def slow_sincos(dim: int, grid: tuple[int, int, int], dims: tuple[int, int, int]) -> torch.Tensor:
    rows = []
    for t in range(grid[0]):
        for h in range(grid[1]):
            for w in range(grid[2]):
                row = []
                for p, d in zip((t, h, w), dims, strict=True):
                    half = d // 2
                    angles = [p * 10000 ** (-i / half) for i in range(half)]
                    row += [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
                rows.append(row[:dim])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("dim,uniform", [(48, True), (40, True), (64, False), (38, True)])
def test_sincos_table_matches_closed_form(dim, uniform):
    grid = (2, 3, 4)
    dims = (math.ceil(dim / 6) * 2,) * 3 if uniform else (dim // 2, dim // 4, dim // 4)
    table = sincos_3d(dim, grid, uniform)
    assert table.shape == (24, dim) and table.dtype == torch.float32
    torch.testing.assert_close(table.double(), slow_sincos(dim, grid, dims), atol=1e-6, rtol=0)


def test_sincos_split_sizes():
    assert sincos_axis_dims(1024) == (342, 342, 342)
    assert sincos_axis_dims(384) == (128, 128, 128)
    assert sincos_axis_dims(1408) == (470, 470, 470)  # 1410 dims, truncated to 1408
    assert sincos_axis_dims(384, uniform_power=False) == (192, 96, 96)


def test_interpolate_identity_and_linear_field():
    src, dst = (2, 4, 4), (4, 6, 8)
    table = torch.randn(1, 32, 5)
    assert interpolate_sincos(table, src, src) is table
    # A field linear in each coordinate is reproduced exactly by trilinear resampling (align_corners=False):
    # value at a destination index = clamp((i + 0.5) * n_src / n_dst - 0.5, 0, n_src - 1).
    pos = grid_positions(src).double()  # (32, 3)
    field = pos.float().unsqueeze(0)  # (1, 32, 3): channel a holds coordinate a
    out = interpolate_sincos(field, src, dst)[0]
    for k, (t, h, w) in enumerate(grid_positions(dst).tolist()):
        want = [min(max((i + 0.5) * s / d - 0.5, 0.0), s - 1.0) for i, s, d in zip((t, h, w), src, dst, strict=True)]
        assert out[k].tolist() == pytest.approx(want, abs=1e-5)


def test_ids_to_positions_non_square():
    grid = (3, 2, 5)
    ids = torch.arange(30)
    pos = ids_to_positions(ids, grid)
    want = [(t, h, w) for t in range(3) for h in range(2) for w in range(5)]
    assert [tuple(p) for p in pos.tolist()] == want


def slow_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (N, hd), positions (N, 3): the released-weights RoPE, one pair at a time."""
    n, hd = x.shape
    d = 2 * ((hd // 3) // 2)
    k = d // 2
    out = x.clone().double()
    for i in range(n):
        for axis in range(3):
            p = float(positions[i, axis])
            base = axis * d
            for c in range(0, d, 2):  # adjacent pair (x0, x1) -> partner (-x1, x0)
                x0, x1 = float(x[i, base + c]), float(x[i, base + c + 1])
                f0 = p * 10000 ** (-(c % k) / k)  # tiled frequencies: channel c uses f_{c mod k}
                f1 = p * 10000 ** (-((c + 1) % k) / k)
                out[i, base + c] = x0 * math.cos(f0) - x1 * math.sin(f0)
                out[i, base + c + 1] = x1 * math.cos(f1) + x0 * math.sin(f1)
    return out


@pytest.mark.parametrize("hd", [64, 32, 80, 30])
def test_rope_matches_slow_reference(hd):
    assert rope_axis_dim(hd) == 2 * ((hd // 3) // 2)
    g = torch.Generator().manual_seed(hd)
    x = torch.randn(7, hd, generator=g)
    positions = torch.randint(0, 9, (7, 3), generator=g)
    got = RopeTable.build(positions, hd).apply(x.view(1, 1, 7, hd))[0, 0]
    torch.testing.assert_close(got.double(), slow_rope(x, positions), atol=2e-5, rtol=0)
    d = rope_axis_dim(hd)
    assert torch.equal(got[:, 3 * d:], x[:, 3 * d:])  # leftover channels are not rotated


def test_textbook_interleaved_rope_differs():
    hd = 64
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, hd, generator=g)
    positions = torch.randint(0, 8, (12, 3), generator=g)
    ours = RopeTable.build(positions, hd).apply(x.view(1, 1, 12, hd))[0, 0]
    d, k = rope_axis_dim(hd), rope_axis_dim(hd) // 2
    omega = 10000 ** (-torch.arange(k).double() / k)
    textbook = x.clone().double()
    for axis in range(3):
        ang = positions[:, axis : axis + 1].double() * omega  # (N, k): pair j rotated by f_j
        seg = x[:, axis * d : (axis + 1) * d].double().view(12, k, 2)
        x0, x1 = seg[..., 0], seg[..., 1]
        rot = torch.stack([x0 * ang.cos() - x1 * ang.sin(), x1 * ang.cos() + x0 * ang.sin()], -1)
        textbook[:, axis * d : (axis + 1) * d] = rot.view(12, d)
    assert (ours.double() - textbook).abs().max() > 1e-2


def test_rope_batched_positions_and_position_zero_is_identity():
    hd = 32
    x = torch.randn(2, 4, 5, hd)  # (B, heads, N, hd)
    positions = torch.randint(0, 6, (2, 5, 3))
    table = RopeTable.build(positions, hd)
    assert table.cos.shape == (2, 1, 5, hd)
    got = table.apply(x)
    for b in range(2):
        torch.testing.assert_close(got[b], RopeTable.build(positions[b], hd).apply(x[b])[0])
    assert torch.equal(RopeTable.build(torch.zeros(5, 3), hd).apply(x), x)


def test_rope_low_precision_input_keeps_dtype():
    positions = torch.randint(0, 6, (5, 3))
    table = RopeTable.build(positions, 32)  # fp32 angles
    x = torch.randn(1, 2, 5, 32)
    got = table.apply(x.bfloat16())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), table.apply(x), atol=5e-2, rtol=2e-2)
