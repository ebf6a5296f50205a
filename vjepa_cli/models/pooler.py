"""Attentive probe heads for frozen-feature evaluation (V-JEPA, Bardes et al., 2024; V-JEPA 2, Assran et al., 2025).

Two official forms, same parameter names as upstream (`query_tokens`, `cross_attention_block.*`, `blocks.{i}.*`,
`linear`):
- V-JEPA 1 (`v2_style=False`): one cross-attention block in which learned queries attend to the tokens, then
  `depth - 1` self-attention blocks over the queries; the cross-attention has an output projection.
- V-JEPA 2 (`v2_style=True`): `depth - 1` self-attention blocks over the tokens, then the cross-attention block,
  whose attention has no output projection.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vjepa_cli.models.layers import Block, CrossAttentionBlock, init_weights


class AttentivePooler(nn.Module):
    """Tokens (B, N, D) -> pooled queries (B, num_queries, D).

    Args:
        embed_dim: token width D.
        num_heads: attention heads.
        depth: blocks in total (1 cross-attention + depth - 1 self-attention).
        mlp_ratio: MLP hidden = int(D * mlp_ratio).
        num_queries: learned query tokens.
        v2_style: V-JEPA 2 layout (self-attention over tokens first, no cross-attention output projection).
        generator: RNG for the init (None: torch's default RNG).
    """

    def __init__(self, embed_dim: int, num_heads: int, depth: int = 1, mlp_ratio: float = 4.0,
                 num_queries: int = 1, v2_style: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.v2_style = v2_style
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, embed_dim))
        self.cross_attention_block = CrossAttentionBlock(embed_dim, num_heads, mlp_ratio, use_proj=not v2_style)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth - 1))
        init_weights(self, generator=generator)
        with torch.no_grad():
            nn.init.trunc_normal_(self.query_tokens, std=0.02, a=-2.0, b=2.0, generator=generator)
            self._rescale()

    @torch.no_grad()
    def _rescale(self) -> None:
        """Upstream `_rescale_blocks`: divide each residual output weight by sqrt(2 * layer id)."""
        xb = self.cross_attention_block
        if self.v2_style:  # self-attention blocks are layers 1..depth-1, the cross-attention MLP comes last
            for layer_id, blk in enumerate(self.blocks, 1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
            xb.mlp.fc2.weight.div_(math.sqrt(2.0 * (len(self.blocks) + 1)))
        else:  # cross-attention is layer 1, the query self-attention blocks follow
            xb.xattn.proj.weight.div_(math.sqrt(2.0))
            xb.mlp.fc2.weight.div_(math.sqrt(2.0))
            for layer_id, blk in enumerate(self.blocks, 2):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    def forward(self, x: Tensor) -> Tensor:
        q = self.query_tokens.expand(x.shape[0], -1, -1)  # (B, nq, D)
        if self.v2_style:
            for blk in self.blocks:
                x = blk(x)
            return self.cross_attention_block(q, x)
        q = self.cross_attention_block(q, x)
        for blk in self.blocks:
            q = blk(q)
        return q


class AttentiveClassifier(nn.Module):
    """`AttentivePooler` + `Linear(D, num_classes)`: tokens (B, N, D) -> logits (B, num_classes)
    (or (B, num_queries, num_classes) with several queries)."""

    def __init__(self, embed_dim: int, num_heads: int, num_classes: int, depth: int = 1, mlp_ratio: float = 4.0,
                 num_queries: int = 1, v2_style: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.pooler = AttentivePooler(embed_dim, num_heads, depth, mlp_ratio, num_queries, v2_style, generator)
        self.linear = nn.Linear(embed_dim, num_classes)
        init_weights(self.linear, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        q = self.pooler(x)  # (B, nq, D)
        return self.linear(q.squeeze(1) if q.shape[1] == 1 else q)
