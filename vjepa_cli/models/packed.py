"""Packed token batches: several (B_i, K_i, D) batches of different lengths as the rows of one (S, D) matrix.

A V-JEPA step encodes and predicts one token batch per mask pair, and the pairs keep different token counts
(multi-block masks: 8 x 0.15 and 2 x 0.7 blocks). Packed, every per-token layer (LayerNorm, the qkv, proj and
MLP Linears: almost all FLOPs) runs once on S = sum_i B_i K_i rows, and only attention runs per batch, each on
its own (B_i, K_i) tokens. That is the same arithmetic as one pass per mask (equal up to float rounding), with
M times fewer, M times larger GEMMs and no padding. On this 2-core CPU it measured faster than both one pass per
mask and padding to the longest mask with a key-padding mask (docs/results.md, "Training step: batched masks").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa_cli.models.pos_embed import RopeTable


class Packed(NamedTuple):
    """The layout of a packed (S, D) matrix: rows [sum_{j<i} B_j K_j, sum_{j<=i} B_j K_j) hold batch i, (B_i, K_i)
    sample-major (row = offset + b * K_i + k)."""

    shapes: tuple[tuple[int, int], ...]  # (B_i, K_i) per batch

    @classmethod
    def of(cls, tensors: list[Tensor]) -> Packed:
        """The layout of tensors (B_i, K_i, ...) (token batches or id lists)."""
        return cls(tuple((int(t.shape[0]), int(t.shape[1])) for t in tensors))

    @property
    def sizes(self) -> list[int]:
        """Rows of each batch."""
        return [b * k for b, k in self.shapes]

    @property
    def rows(self) -> int:
        return sum(self.sizes)

    def pack(self, xs: list[Tensor]) -> Tensor:
        """[(B_i, K_i, ...)] -> (S, ...): one copy."""
        return torch.cat([x.reshape(b * k, *x.shape[2:]) for x, (b, k) in zip(xs, self.shapes, strict=True)])

    def unpack(self, x: Tensor) -> list[Tensor]:
        """(S, ...) -> [(B_i, K_i, ...)] views."""
        return [s.view(b, k, *x.shape[1:]) for s, (b, k) in zip(x.split(self.sizes), self.shapes, strict=True)]

    def sample_rows(self, per_sample: Tensor) -> Tensor:
        """A value per sample (sum_i B_i, ...) -> the same value on each of its rows (S, ...)."""
        parts = per_sample.split([b for b, _ in self.shapes])
        return self.pack([p.unsqueeze(1).expand(b, k, *p.shape[1:]) for p, (b, k) in zip(parts, self.shapes,
                                                                                          strict=True)])


def packed_ids(layout: Packed, ids: list[Tensor], num_tokens: int) -> Tensor:
    """Token ids [(B_i, K_i)] into (B, N) rows -> (S,) row indices into the (B * N) flattened tokens."""
    return layout.pack([m + torch.arange(m.shape[0], device=m.device).unsqueeze(1) * num_tokens for m in ids])


def packed_rope(rope: RopeTable) -> RopeTable:
    """A table built for (S,) packed token ids ((1, 1, S, hd)) as (S, 1, hd): it broadcasts over heads of packed
    (S, heads, hd) queries and keys."""
    return RopeTable(rope.cos.flatten(0, 2).unsqueeze(1), rope.sin.flatten(0, 2).unsqueeze(1))


def packed_attention(qkv: Tensor, layout: Packed, num_heads: int, rope: RopeTable | None = None) -> Tensor:
    """Self-attention within each batch of a packed qkv matrix (S, 3 D) -> (S, D) (before the output projection).

    RoPE (a `packed_rope` table) rotates all queries and keys in one op; then each batch attends over its own
    (B_i, K_i) tokens through `scaled_dot_product_attention`.
    """
    s, d3 = qkv.shape
    d = d3 // 3
    q, k, v = qkv.view(s, 3, num_heads, d // num_heads).unbind(1)  # (S, h, hd) each
    if rope is not None:
        q, k = rope.apply(q), rope.apply(k)
    outs = []
    for qi, ki, vi, (b, n) in zip(*(t.split(layout.sizes) for t in (q, k, v)), layout.shapes, strict=True):
        qi, ki, vi = (t.view(b, n, num_heads, -1).transpose(1, 2) for t in (qi, ki, vi))  # (B_i, h, K_i, hd)
        outs.append(F.scaled_dot_product_attention(qi, ki, vi).transpose(1, 2).reshape(b * n, d))
    return torch.cat(outs)  # (S, D)
