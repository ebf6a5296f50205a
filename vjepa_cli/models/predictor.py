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
from vjepa_cli.models.packed import Packed, packed_rope
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
        context_tokens: Tensor | list[Tensor],
        context_ids: Tensor | list[Tensor],
        target_ids: Tensor | list[Tensor],
        mask_index: int | list[int] = 0,
        grid: tuple[int, int, int] | None = None,
        modality: str = "video",
        return_context: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor] | list:
        """Predict target features (and, with a context head, the context tokens' features).

        Several masks at once: lists of M context token batches, context ids and target ids (lengths may differ
        between masks) and `mask_index` a list of M indices (an int i: i, i+1, ...) -> a list of M results, the
        same as M calls up to float rounding, computed in one pass (see `_forward_split`).

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
        if isinstance(context_tokens, (list, tuple)):
            return self._forward_split(list(context_tokens), context_ids, target_ids, mask_index, grid, modality,
                                       return_context)
        b, kc, _ = context_tokens.shape
        kt = target_ids.shape[1]
        x = self.predictor_embed(context_tokens)  # (B, Kc, Dp)
        x, ids, order = self._sequence(x, context_ids, target_ids, mask_index, grid)  # (B, Kc+Kt, Dp)
        if self.cfg.modality_embed:  # after sorting, as upstream (the same vector on every token)
            x = x + (self.img_mod_embed if modality == "image" else self.video_mod_embed)
        rope = self._rope(ids, grid) if self.use_rope else None
        x, _ = run_blocks(self.predictor_blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training)
        if order is not None:
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

    def _sequence(self, x: Tensor, context_ids: Tensor, target_ids: Tensor, mask_index: int,
                  grid: tuple[int, int, int]) -> tuple[Tensor, Tensor, Tensor | None]:
        """Embedded context (B, Kc, Dp) + mask tokens at the targets (+ sin-cos positions), sorted by position
        when `sort_tokens` -> (tokens (B, Kc+Kt, Dp), their ids (B, Kc+Kt), the sort order or None)."""
        b, kt = x.shape[0], target_ids.shape[1]
        token = self.mask_tokens[mask_index % len(self.mask_tokens)]  # (1, 1, Dp)
        if self.use_rope:
            tgt = token.expand(b, kt, -1)
        else:
            pos = interpolate_sincos(self.predictor_pos_embed, self.grid, grid)[0]  # (N, Dp)
            x = x + pos[context_ids]
            tgt = token + pos[target_ids]  # (B, Kt, Dp)
        x = torch.cat([x, tgt], dim=1)  # (B, Kc+Kt, Dp)
        ids = torch.cat([context_ids, target_ids], dim=1)  # (B, Kc+Kt)
        order = None
        if self.sort_tokens:
            order = torch.argsort(ids, dim=1, stable=True)
            x, ids = gather_tokens(x, order), torch.gather(ids, 1, order)
        return x, ids, order

    def _rope(self, ids: Tensor, grid: tuple[int, int, int]) -> RopeTable:
        return RopeTable.from_ids(ids, grid, self.pred_dim // self.num_heads, interleaved=self.cfg.rope_interleaved,
                                  interp_grid=self.cfg.pred_rope_interp_grid)

    def _forward_split(self, context_tokens: list[Tensor], context_ids: list[Tensor], target_ids: list[Tensor],
                       mask_index: list[int] | int, grid: tuple[int, int, int], modality: str,
                       return_context: bool) -> list:
        """`forward` for M masks at once: lists of context tokens [(B, Kc_i, L_in*D)], their ids [(B, Kc_i)],
        target ids [(B, Kt_i)], mask indices (default: 0..M-1) -> a list of what `forward` returns per mask.
        One pass: the M sequences are packed (`packed.py`), every Linear runs once on all their tokens."""
        m = len(context_tokens)
        if not len(context_ids) == len(target_ids) == m:
            raise ValueError(f"got {m} context batches, {len(context_ids)} context and {len(target_ids)} target id "
                             "lists")
        indices = [mask_index + i for i in range(m)] if isinstance(mask_index, int) else list(mask_index)
        if len(indices) != m:
            raise ValueError(f"got {len(indices)} mask indices for {m} masks")
        ctx_layout = Packed.of(context_ids)
        x = ctx_layout.unpack(self.predictor_embed(ctx_layout.pack(context_tokens)))  # [(B, Kc_i, Dp)]
        seqs = [self._sequence(*a, grid) for a in zip(x, context_ids, target_ids, indices, strict=True)]
        layout = Packed.of([s[1] for s in seqs])  # (B, Kc_i+Kt_i) per mask
        x = layout.pack([s[0] for s in seqs])  # (S, Dp)
        if self.cfg.modality_embed:
            x = x + (self.img_mod_embed if modality == "image" else self.video_mod_embed)[0]
        rope = packed_rope(self._rope(layout.pack([s[1] for s in seqs]), grid)) if self.use_rope else None
        x, _ = run_blocks(self.predictor_blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training,
                          layout=layout)
        outs = []  # per mask: the context then the target rows, in id-list order
        for xi, (_, ids, order), kc in zip(layout.unpack(x), seqs, (c.shape[1] for c in context_ids), strict=True):
            if order is not None:
                slot = torch.empty_like(order).scatter_(1, order, torch.arange(ids.shape[1], device=ids.device)
                                                        .expand(ids.shape[0], -1))
                xi = gather_tokens(xi, slot if return_context else slot[:, kc:])
            elif not return_context:
                xi = xi[:, kc:]
            outs.append(xi)
        out_layout = Packed.of(outs)
        x = self.predictor_norm(out_layout.pack(outs))  # (S_out, Dp)
        if not return_context:
            return out_layout.unpack(self.predictor_proj(x))  # [(B, Kt_i, out)]
        parts = [(xi[:, :kc], xi[:, kc:]) for xi, kc in zip(out_layout.unpack(x), (c.shape[1] for c in context_ids),
                                                             strict=True)]
        tgt_layout, ctx_out = Packed.of([t for _, t in parts]), Packed.of([c for c, _ in parts])
        targets = tgt_layout.unpack(self.predictor_proj(tgt_layout.pack([t for _, t in parts])))
        contexts = ctx_out.unpack(self.predictor_proj_context(ctx_out.pack([c for c, _ in parts])))
        return list(zip(targets, contexts, strict=True))
