"""The JEPA predictor: from context-token features and learned mask tokens placed at the target positions,
predict the target tokens' features.

V-JEPA (Bardes et al., 2024) concatenates context and target tokens with sin-cos positions; V-JEPA 2
(Assran et al., 2025) sorts them by position and uses 3D RoPE. Names match the official checkpoints
(`predictor_embed`, `mask_tokens.{k}`, `predictor_pos_embed`, `predictor_blocks.{i}.*`, `predictor_norm`,
`predictor_proj`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.models.layers import LN_EPS, Block, init_weights, rescale_blocks, run_blocks
from vjepa_cli.models.pos_embed import RopeTable, interpolate_sincos, sincos_3d
from vjepa_cli.models.vit import gather_tokens

PRED_MLP_RATIO = 4.0  # the official predictors use 4 for every encoder size (ViT-g included)


class Predictor(nn.Module):
    """Narrow ViT predictor (width `cfg.pred_embed_dim`, `cfg.pred_depth` blocks, `cfg.pred_heads` heads)."""

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        dim = cfg.resolved_sizes()[0]
        pdim, heads = cfg.pred_embed_dim, cfg.pred_heads
        self.embed_dim, self.pred_dim, self.num_heads = dim, pdim, heads
        self.use_rope = cfg.pos_embed == "rope"
        self.sort_tokens = cfg.sort_tokens
        self.grid = cfg.grid()
        self.predictor_embed = nn.Linear(dim, pdim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, pdim)) for _ in range(cfg.pred_num_mask_tokens)
        )
        if not self.use_rope:
            table = sincos_3d(pdim, self.grid, cfg.uniform_power).unsqueeze(0)  # (1, N, Dp)
            self.register_buffer("predictor_pos_embed", table, persistent=True)
        self.predictor_blocks = nn.ModuleList(
            Block(pdim, heads, PRED_MLP_RATIO, cfg.qkv_bias, use_rope=self.use_rope) for _ in range(cfg.pred_depth)
        )
        self.predictor_norm = nn.LayerNorm(pdim, eps=LN_EPS)
        self.predictor_proj = nn.Linear(pdim, dim)
        init_weights(self, generator=generator)  # mask tokens stay zero (`zero_init_mask_tokens`)
        rescale_blocks(self.predictor_blocks)

    def forward(
        self,
        context_tokens: Tensor,
        context_ids: Tensor,
        target_ids: Tensor,
        mask_index: int = 0,
        grid: tuple[int, int, int] | None = None,
    ) -> Tensor:
        """Predict target features.

        Args:
            context_tokens: (B, Kc, D) encoder output for the context tokens.
            context_ids: (B, Kc) their token ids.
            target_ids: (B, Kt) ids of the tokens to predict.
            mask_index: which learned mask token to use (taken modulo their number).
            grid: (T', H', W') the ids refer to (default: the config's grid).

        Returns:
            (B, Kt, D) predictions, in the order of `target_ids`.
        """
        grid = self.grid if grid is None else tuple(grid)
        b, kc, _ = context_tokens.shape
        kt = target_ids.shape[1]
        x = self.predictor_embed(context_tokens)  # (B, Kc, Dp)
        token = self.mask_tokens[mask_index % len(self.mask_tokens)]  # (1, 1, Dp)
        if self.use_rope:
            tgt = token.expand(b, kt, -1)
        else:
            pos = interpolate_sincos(self.predictor_pos_embed, self.grid, grid)[0]  # (N, Dp)
            x = x + pos[context_ids]
            tgt = token + pos[target_ids]  # (B, Kt, Dp)
        x = torch.cat([x, tgt], dim=1)  # (B, Kc+Kt, Dp)
        ids = torch.cat([context_ids, target_ids], dim=1)  # (B, Kc+Kt)
        if self.sort_tokens:
            order = torch.argsort(ids, dim=1, stable=True)
            x, ids = gather_tokens(x, order), torch.gather(ids, 1, order)
        rope = RopeTable.from_ids(ids, grid, self.pred_dim // self.num_heads) if self.use_rope else None
        x, _ = run_blocks(self.predictor_blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training)
        if self.sort_tokens:
            # Where each target token went: its slot in the sorted sequence (inverse permutation, last Kt only).
            slot = torch.empty_like(order).scatter_(1, order, torch.arange(kc + kt, device=order.device).expand(b, -1))
            x = gather_tokens(x, slot[:, kc:])  # (B, Kt, Dp)
        else:
            x = x[:, kc:]
        return self.predictor_proj(self.predictor_norm(x))  # LayerNorm is per token: normalising Kt only is exact
