"""The trainable pair under the V-JEPA 2.1 objective (Mur-Labadia et al., 2026; official `app/vjepa_2_1/train.py`).

One batch (video, or images as one-frame clips; the encoder picks its embedder from T):
1. targets: h = per-level layer norm of the EMA encoder's hierarchical output (every level; `normalize_levels`), or
   the V-JEPA 1/2 target without `hierarchical_targets`, under no_grad;
2. for each mask pair i: z_i = encoder(clip, [ctx_i], hierarchical) -> predictor(..., mask_index=i, modality,
   return_context) -> (target predictions, context predictions); with `mask_batching="packed"` all pairs in one
   encoder and one predictor pass (see `jepa.py`);
3. loss = mean_i mean |z_i - h[tgt_i]| ** p / p + lambda * mean_i L_ctx,i (`dense_loss.context_loss`), where the
   caller passes this step's lambda (0 before the warm-up, `dense_loss.context_lambda`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa_cli.data.masks import apply_masks
from vjepa_cli.train.dense_loss import context_loss, distance_weights, normalize_levels
from vjepa_cli.train.jepa import JepaModel
from vjepa_cli.train.loss import anti_collapse, jepa_loss


class Jepa21Model(JepaModel):
    """Context encoder + predictor under the 2.1 objective; `forward` returns the scalar loss of one batch."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module, loss_exp: float = 1.0, reg_coeff: float = 0.0,
                 hierarchical: bool = False, predict_context: bool = False, weight_distance: bool = True,
                 mask_batching: str = "packed"):
        super().__init__(encoder, predictor, loss_exp, reg_coeff, mask_batching)
        self.hierarchical, self.predict_context, self.weight_distance = hierarchical, predict_context, weight_distance
        self.last_terms: dict = {}

    def forward(self, clips: Tensor, targets: Tensor, context_masks: list[Tensor], target_masks: list[Tensor],
                grid: tuple[int, int, int], lam: float = 0.0, modality: str = "video") -> Tensor:
        """clips (B, C, T, H, W) (T = 1: images); targets (B, N, L*D) from `target_features21`; masks [(B, K_i)] on
        `grid`; `lam` the context-loss weight of this step."""
        if self.packs(context_masks):  # one encoder and one predictor pass for all mask pairs
            zs = self.encoder(clips, masks=context_masks, split=True, hierarchical=self.hierarchical)
            outs = self.predictor(zs, context_masks, target_masks, mask_index=0, grid=grid, modality=modality,
                                  return_context=self.predict_context)  # [(B, Kt_i, L*D)] or [(targets, context)]
        else:
            outs = [self.predictor(self.encoder(clips, masks=[mc], hierarchical=self.hierarchical), mc, mt,
                                   mask_index=i, grid=grid, modality=modality, return_context=self.predict_context)
                    for i, (mc, mt) in enumerate(zip(context_masks, target_masks, strict=True))]
        preds = [o[0] for o in outs] if self.predict_context else outs  # [(B, Kt_i, L*D)]
        tgts = [apply_masks(targets, [mt]) for mt in target_masks]  # [(B, Kt_i, L*D)]
        ctx_terms = []
        if self.predict_context:
            for (_, zc), mc, mt in zip(outs, context_masks, target_masks, strict=True):
                w = distance_weights(mc, mt, grid, self.weight_distance)  # (B, Kc)
                ctx_terms.append(context_loss(zc, apply_masks(targets, [mc]), w, self.loss_exp))
        loss = jepa_loss(preds, tgts, self.loss_exp)
        self.last_terms = {"loss_pred": loss.detach()}  # for the metrics record (read on log steps)
        if ctx_terms:
            ctx = torch.stack(ctx_terms).mean()
            self.last_terms.update(loss_ctx=ctx.detach(), lam=lam)
            loss = loss + lam * ctx
        if self.reg_coeff > 0:
            loss = loss + self.reg_coeff * anti_collapse(preds)
        return loss


@torch.no_grad()
def target_features21(target_encoder: nn.Module, clips: Tensor, levels: int) -> Tensor:
    """(B, C, T, H, W) -> (B, N, L*D) per-level normalised hierarchical targets (levels > 1), else the V-JEPA 1/2
    target (B, N, D)."""
    if levels > 1:
        return normalize_levels(target_encoder(clips, hierarchical=True), levels)
    return normalize_levels(target_encoder(clips), 1)
