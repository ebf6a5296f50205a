"""The trainable V-JEPA pair (context encoder + predictor), its loss, and the AdamW setup.

One training step (Bardes et al. 2024, section 3; official `app/vjepa/train.py`):
1. targets: h = layer_norm(target_encoder(clip)) without affine parameters, under no_grad;
2. for each mask pair i: z_i = predictor(encoder(clip, [ctx_i]), ctx_i, tgt_i, mask_index=i);
3. loss = mean_i mean |z_i - h[tgt_i]| ** p / p (+ optional anti-collapse term);
4. backward, AdamW (no weight decay on biases and 1-D parameters), then EMA of the target encoder.

`JepaModel.forward` runs 2-3 in one call so that DDP sees one forward per backward even though the encoder
and predictor run once per mask.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vjepa_cli.config.train import OptimConfig
from vjepa_cli.data.masks import apply_masks
from vjepa_cli.train.loss import anti_collapse, jepa_loss, normalize_targets

log = logging.getLogger(__name__)


class JepaModel(nn.Module):
    """Context encoder + predictor; `forward` returns the scalar loss of one batch."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module, loss_exp: float = 1.0, reg_coeff: float = 0.0):
        super().__init__()
        self.encoder, self.predictor = encoder, predictor
        self.loss_exp, self.reg_coeff = loss_exp, reg_coeff

    def forward(self, clips: Tensor, targets: Tensor, context_masks: list[Tensor], target_masks: list[Tensor],
                grid: tuple[int, int, int]) -> Tensor:
        """clips (B, C, T, H, W) float; targets (B, N, D) normalised target features; masks [(B, K_i)]."""
        preds, tgts = [], []
        for i, (mc, mt) in enumerate(zip(context_masks, target_masks, strict=True)):
            z = self.encoder(clips, masks=[mc])  # (B, Kc, D)
            preds.append(self.predictor(z, mc, mt, mask_index=i, grid=grid))  # (B, Kt, D)
            tgts.append(apply_masks(targets, [mt]))  # (B, Kt, D)
        loss = jepa_loss(preds, tgts, self.loss_exp)
        if self.reg_coeff > 0:
            loss = loss + self.reg_coeff * anti_collapse(preds)
        return loss


@torch.no_grad()
def target_features(target_encoder: nn.Module, clips: Tensor) -> Tensor:
    """(B, C, T, H, W) -> layer-normalised target features (B, N, D)."""
    return normalize_targets(target_encoder(clips))


def param_groups(model: nn.Module) -> list[dict]:
    """Two AdamW groups: weights with weight decay, and biases / 1-D parameters (norms) without.

    Each group carries `apply_wd` so the weight-decay schedule knows which one to drive.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)  # official WD_exclude
    return [
        {"params": decay, "apply_wd": True},
        {"params": no_decay, "apply_wd": False, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over `param_groups(model)`: fused kernels on CPU/CUDA (one kernel per step over all parameters,
    DTensor shards under FSDP included), foreach otherwise. On CUDA a refusal of fused is a warning: the run
    goes on with foreach, several kernels per parameter group slower."""
    kw = dict(lr=cfg.start_lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(param_groups(model), fused=True, **kw)
        except (RuntimeError, TypeError) as e:
            if device.type == "cuda":
                log.warning("fused AdamW is not available here (%s); using foreach AdamW", str(e).strip()[:200])
    return torch.optim.AdamW(param_groups(model), foreach=True, **kw)


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, wd: float) -> None:
    """Set this step's learning rate (all groups) and weight decay (groups with `apply_wd`)."""
    for g in optimizer.param_groups:
        g["lr"] = lr
        if g.get("apply_wd", True):
            g["weight_decay"] = wd
