"""The JEPA predictor: from context-token features and learned mask tokens placed at the target positions,
predict the target tokens' features.

V-JEPA (Bardes et al., 2024) concatenates context and target tokens with sin-cos positions; V-JEPA 2
(Assran et al., 2025) sorts them by position and uses 3D RoPE. V-JEPA 2.1 (Mur-Labadia et al., 2026) reads
and predicts several encoder levels (Linear-GELU-Linear in), adds a modality vector after sorting, and predicts
the context tokens too, through a second head. Names match the official checkpoints (`predictor_embed`
(2.1 multi-level: `predictor_embed.{0,2}`), `mask_tokens.{k}`, `predictor_pos_embed`, `predictor_blocks.{i}.*`,
`predictor_norm`, `predictor_proj`, 2.1: `img_mod_embed`, `video_mod_embed`, `predictor_proj_context`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.layers import LN_EPS, Block, init_modality, init_weights, rescale_blocks, run_blocks
from vjepa_cli.models.pos_embed import RopeTable, interpolate_sincos, sincos_3d
from vjepa_cli.models.vit import gather_tokens

PRED_MLP_RATIO = 4.0  # the official predictors use 4 for every encoder size (ViT-g included)


class Predictor(nn.Module):
    """Narrow ViT predictor (width `cfg.pred_embed_dim`, `cfg.pred_depth` blocks, `cfg.pred_heads` heads).

    Reads `cfg.pred_levels` encoder levels (L_in * D wide) and predicts `pred_levels * pred_out_dim` channels.
    """

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        dim = cfg.resolved_sizes()[0]
        pdim, heads, levels = cfg.pred_embed_dim, cfg.pred_heads, cfg.pred_levels
        self.embed_dim, self.pred_dim, self.num_heads = dim, pdim, heads
        self.in_dim, self.out_dim = levels * dim, levels * (cfg.pred_out_dim or dim)
        self.use_rope = cfg.pos_embed == "rope"
        self.sort_tokens = cfg.sort_tokens
        self.grid = cfg.grid()
        if levels == 1:
            self.predictor_embed = nn.Linear(dim, pdim)
        else:  # 2.1 g/G: the concatenated levels through Linear(L*D -> D), GELU, Linear(D -> Dp)
            self.predictor_embed = nn.Sequential(nn.Linear(self.in_dim, dim), nn.GELU(), nn.Linear(dim, pdim))
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, pdim)) for _ in range(cfg.pred_num_mask_tokens)
        )
        if cfg.modality_embed:
            self.img_mod_embed = nn.Parameter(torch.zeros(1, 1, pdim))
            self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, pdim))
        if not self.use_rope:
            table = sincos_3d(pdim, self.grid, cfg.uniform_power).unsqueeze(0)  # (1, N, Dp)
            self.register_buffer("predictor_pos_embed", table, persistent=True)
        self.predictor_blocks = nn.ModuleList(
            Block(pdim, heads, PRED_MLP_RATIO, cfg.qkv_bias, use_rope=self.use_rope) for _ in range(cfg.pred_depth)
        )
        self.predictor_norm = nn.LayerNorm(pdim, eps=LN_EPS)
        self.predictor_proj = nn.Linear(pdim, self.out_dim)
        self.predictor_proj_context = nn.Linear(pdim, self.out_dim) if cfg.pred_context_head else None
        init_weights(self, generator=generator)  # mask tokens stay zero (`zero_init_mask_tokens`)
        rescale_blocks(self.predictor_blocks)
        if cfg.modality_embed:
            init_modality(self, generator)

    def forward(
        self,
        context_tokens: Tensor,
        context_ids: Tensor,
        target_ids: Tensor,
        mask_index: int = 0,
        grid: tuple[int, int, int] | None = None,
        modality: str = "video",
        return_context: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Predict target features (and, with a context head, the context tokens' features).

        Args:
            context_tokens: (B, Kc, L_in*D) encoder output for the context tokens (L_in = `cfg.pred_levels`:
                the hierarchical output for a multi-level 2.1 predictor, else the default output).
            context_ids: (B, Kc) their token ids.
            target_ids: (B, Kt) ids of the tokens to predict.
            mask_index: which learned mask token to use (taken modulo their number).
            grid: (T', H', W') the ids refer to (default: the config's grid).
            modality: "video" or "image": which modality vector a 2.1 predictor adds (ignored without them).
            return_context: also return the context predictions (2.1 predictors with a context head).

        Returns:
            (B, Kt, out) predictions in the order of `target_ids` (out = `self.out_dim`), or with
            `return_context` the tuple (targets, context predictions (B, Kc, out) in the order of `context_ids`).
        """
        if modality not in ("video", "image"):
            raise ValueError(f"modality must be 'video' or 'image', got {modality!r}")
        if return_context and self.predictor_proj_context is None:
            raise VjepaError("this predictor has no context head (only V-JEPA 2.1 predictors predict the context "
                             "tokens): call it without return_context=True")
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
        if self.cfg.modality_embed:  # after sorting, as upstream (the same vector on every token)
            x = x + (self.img_mod_embed if modality == "image" else self.video_mod_embed)
        rope = None
        if self.use_rope:
            rope = RopeTable.from_ids(ids, grid, self.pred_dim // self.num_heads, interleaved=self.cfg.rope_interleaved,
                                      interp_grid=self.cfg.pred_rope_interp_grid)
        x, _ = run_blocks(self.predictor_blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training)
        if self.sort_tokens:
            # Where each token went: its slot in the sorted sequence (inverse permutation).
            slot = torch.empty_like(order).scatter_(1, order, torch.arange(kc + kt, device=order.device).expand(b, -1))
            x = gather_tokens(x, slot if return_context else slot[:, kc:])  # (B, Kc+Kt or Kt, Dp)
        elif not return_context:
            x = x[:, kc:]
        x = self.predictor_norm(x)  # LayerNorm is per token: normalising a subset is exact
        targets = self.predictor_proj(x[:, kc:] if return_context else x)  # (B, Kt, out)
        if not return_context:
            return targets
        return targets, self.predictor_proj_context(x[:, :kc])  # (B, Kc, out)
