"""Position encodings of V-JEPA: fixed 3D sin-cos tables (V-JEPA 1) and 3D rotary embeddings (V-JEPA 2).

- Sin-cos: Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from Video"
  (V-JEPA, 2024), following the 2D tables of MAE (He et al., 2022). Each axis gets
  `[sin(p * w), cos(p * w)]` with `w_i = 10000^(-i / (d/2))`, axes concatenated in the order t, h, w.
- RoPE: Su et al., "RoFormer" (2021), in the 3D form of V-JEPA 2 (Assran et al., 2025). The released
  weights use *tiled* frequencies (`[f_0..f_{k-1}, f_0..f_{k-1}]`) with an *adjacent-pair* partner
  `(x0, x1) -> (-x1, x0)`; that mismatch is reproduced on purpose, or the checkpoints would not work.
  V-JEPA 2.1 (Mur-Labadia et al., 2026) uses the *interleaved* layout (`[f_0, f_0, f_1, f_1, ...]`: each adjacent
  pair is rotated by one angle, the textbook RoPE) and may rescale the spatial positions onto the 16-patch
  pretraining grid (`h * (g - 1) / (H' - 1)`, the official `interpolate_rope`).

Token ids are t-major: `id = t * H' * W' + h * W' + w`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


# ---------------------------------------------------------------------------------------------- sin-cos
def sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """`[sin(p w), cos(p w)]` for positions `pos` (M,) -> (M, dim), float64. `dim` must be even."""
    if dim % 2:
        raise ValueError(f"sin-cos dim must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega  # (dim/2,)
    out = pos.to(torch.float64).reshape(-1, 1) * omega  # (M, dim/2)
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_axis_dims(embed_dim: int, uniform_power: bool = True) -> tuple[int, int, int]:
    """Dims given to the (t, h, w) axes: `ceil(D/6)*2` each (uniform power, then truncated to D) or D/2, D/4, D/4."""
    if uniform_power:
        d = int(math.ceil(embed_dim / 6) * 2)
        return d, d, d
    return embed_dim // 2, embed_dim // 4, embed_dim // 4


def sincos_3d(embed_dim: int, grid: tuple[int, int, int], uniform_power: bool = True) -> Tensor:
    """The 3D sin-cos table for a (T', H', W') grid -> (T'*H'*W', embed_dim) float32, t-major token order."""
    t, h, w = grid
    dt, dh, dw = sincos_axis_dims(embed_dim, uniform_power)
    gt, gh, gw = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    table = torch.cat([sincos_1d(dt, gt), sincos_1d(dh, gh), sincos_1d(dw, gw)], dim=1)
    return table[:, :embed_dim].float()


def interpolate_sincos(table: Tensor, src_grid: tuple[int, int, int], dst_grid: tuple[int, int, int]) -> Tensor:
    """Resample a (1, N, D) table from `src_grid` to `dst_grid` (trilinear, as the official
    `interpolate_pos_encoding`); returned unchanged when the grids are equal."""
    if tuple(src_grid) == tuple(dst_grid):
        return table
    d = table.shape[-1]
    vol = table.reshape(1, *src_grid, d).permute(0, 4, 1, 2, 3)  # (1, D, T, H, W)
    vol = F.interpolate(vol, size=tuple(dst_grid), mode="trilinear", align_corners=False)
    return vol.permute(0, 2, 3, 4, 1).reshape(1, -1, d)


# ---------------------------------------------------------------------------------------------- RoPE
def ids_to_positions(ids: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """Token ids (...,) -> integer (t, h, w) positions (..., 3) for a (T', H', W') grid."""
    _, h, w = grid
    t_ids = torch.div(ids, h * w, rounding_mode="floor")
    rem = ids - t_ids * (h * w)
    h_ids = torch.div(rem, w, rounding_mode="floor")
    return torch.stack([t_ids, h_ids, rem - h_ids * w], dim=-1)


def rope_positions(ids: Tensor, grid: tuple[int, int, int], interp_grid: int = 0) -> Tensor:
    """Token ids (...,) -> float32 (t, h, w) RoPE positions (..., 3) for a (T', H', W') grid.

    With `interp_grid` g > 0 the spatial positions are stretched onto 0..g-1 (V-JEPA 2.1 `interpolate_rope`):
    `h * (g - 1) / (H' - 1)`, in that order and in fp32 as upstream; t is never scaled.
    """
    pos = ids_to_positions(ids, grid).to(torch.float32)
    if not interp_grid:
        return pos
    _, h, w = grid
    if h < 2 or w < 2:
        raise ValueError(f"interpolated RoPE needs at least 2 patches per side, got a {h} x {w} token grid")
    t_pos, h_pos, w_pos = pos.unbind(-1)
    return torch.stack([t_pos, h_pos * (interp_grid - 1) / (h - 1), w_pos * (interp_grid - 1) / (w - 1)], dim=-1)


def grid_positions(grid: tuple[int, int, int], device: torch.device | str | None = None) -> Tensor:
    """(t, h, w) positions of every token of a full grid, in id order -> (N, 3)."""
    n = grid[0] * grid[1] * grid[2]
    return ids_to_positions(torch.arange(n, device=device), grid)


def rope_axis_dim(head_dim: int) -> int:
    """Channels rotated per axis: `2 * ((head_dim // 3) // 2)`; the `head_dim - 3 * d` last ones are left alone."""
    return 2 * ((head_dim // 3) // 2)


class RopeTable(NamedTuple):
    """cos/sin of the 3D rotary embedding for one token layout, shared by every block of a forward.

    `cos` and `sin` are (B or 1, 1, N, head_dim) float32 (or the dtype asked for); leftover channels carry
    cos=1, sin=0, so `apply(x) = x * cos + rot(x) * sin` over the whole head leaves them unchanged.
    """

    cos: Tensor
    sin: Tensor

    @classmethod
    def build(cls, positions: Tensor, head_dim: int, dtype: torch.dtype | None = None,
              interleaved: bool = False) -> RopeTable:
        """Tables for `positions` (N, 3) or (B, N, 3) holding (t, h, w), integers or floats.

        `interleaved=False` is V-JEPA 2's tiled frequency layout (channel i of an axis uses f_(i mod d/2)),
        `True` V-JEPA 2.1's (channel i uses f_(i // 2)). A token that should be rotated on time only (e.g. an
        action token) gets h = w = 0: position 0 leaves those channels unchanged (the official action rotation).
        """
        d = rope_axis_dim(head_dim)
        if positions.dim() == 2:
            positions = positions.unsqueeze(0)
        b, n, _ = positions.shape
        k = d // 2
        # Same fp32 arithmetic as the official code (omega /= k; 1 / 10000**omega), so angles match bit for bit.
        omega = 1.0 / 10000 ** (torch.arange(k, dtype=torch.float32, device=positions.device) / (d / 2.0))
        freq = positions.to(torch.float32).unsqueeze(-1) * omega  # (B, N, 3, k)
        if interleaved:  # per axis [f0, f0, f1, f1, ...]: pair j turns by f_j (2.1)
            freq = freq.repeat_interleave(2, dim=-1).reshape(b, n, 3 * d)
        else:  # tiled per axis: [f0..fk-1, f0..fk-1] (V-JEPA 2's quirk)
            freq = freq.repeat(1, 1, 1, 2).reshape(b, n, 3 * d)
        cos, sin = freq.cos(), freq.sin()
        rest = head_dim - 3 * d
        if rest:
            cos = torch.cat([cos, cos.new_ones(b, n, rest)], dim=-1)
            sin = torch.cat([sin, sin.new_zeros(b, n, rest)], dim=-1)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, N, hd): broadcast over heads
        if dtype is not None:
            cos, sin = cos.to(dtype), sin.to(dtype)
        return cls(cos, sin)

    @classmethod
    def from_ids(cls, ids: Tensor, grid: tuple[int, int, int], head_dim: int, dtype: torch.dtype | None = None,
                 interleaved: bool = False, interp_grid: int = 0) -> RopeTable:
        """Tables for token ids (N,) or (B, N) of a (T', H', W') grid (see `rope_positions`, `build`)."""
        return cls.build(rope_positions(ids, grid, interp_grid), head_dim, dtype, interleaved)

    def apply(self, x: Tensor) -> Tensor:
        """Rotate x (..., N, head_dim), e.g. q or k as (B, heads, N, hd), in the tables' dtype (fp32 unless asked
        otherwise, so bf16 activations do not lose the angles' precision); the result has x's dtype."""
        cos, sin = self.cos, self.sin
        xr = x.to(cos.dtype)  # no copy when the dtypes agree
        if x.shape[-1] % 2:  # odd head dim: the leftover channel cannot be pair-swapped; rotate the even part
            out = torch.cat([self._rotate(xr[..., :-1], cos[..., :-1], sin[..., :-1]), xr[..., -1:]], -1)
        else:
            out = self._rotate(xr, cos, sin)
        return out.to(x.dtype)

    @staticmethod
    def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        return torch.addcmul(x * cos, rotate_pairs(x), sin)


def rotate_pairs(x: Tensor) -> Tensor:
    """Adjacent pairs (x0, x1) -> (-x1, x0) along the last dim (even length)."""
    pairs = x.unflatten(-1, (-1, 2))  # (..., hd/2, 2)
    if x.dtype in (torch.float32, torch.float64) and _complex_viewable(pairs):
        # (x0 + i x1) * i = -x1 + i x0: one vectorised complex multiply, several times faster than a flip/stack
        return torch.view_as_real(torch.view_as_complex(pairs) * 1j).flatten(-2)
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def _complex_viewable(pairs: Tensor) -> bool:
    return pairs.stride(-1) == 1 and pairs.storage_offset() % 2 == 0 and all(s % 2 == 0 for s in pairs.stride()[:-1])
