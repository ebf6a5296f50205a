"""The trainable V-JEPA pair (context encoder + predictor), its loss, and the AdamW setup.

One training step (Bardes et al. 2024, section 3; official `app/vjepa/train.py`):
1. targets: h = layer_norm(target_encoder(clip)) without affine parameters, under no_grad;
2. for each mask pair i: z_i = predictor(encoder(clip, [ctx_i]), ctx_i, tgt_i, mask_index=i);
3. loss = mean_i mean |z_i - h[tgt_i]| ** p / p (+ optional anti-collapse term);
4. backward, AdamW (no weight decay on biases and 1-D parameters), then EMA of the target encoder.

`JepaModel.forward` runs 2-3 in one call so that DDP sees one forward per backward. With
`mask_batching="packed"` (the default) the encoder and the predictor each run once for all mask pairs: their
tokens are packed into one (sum_i B K_i, D) matrix (`models/packed.py`), so every Linear runs once on all of
them and only attention runs per mask; "per_mask" runs both once per mask pair, as the official code does.
Both give the same loss and gradients up to float rounding (tests/test_mask_batching.py).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vjepa_cli.config.train import OptimConfig
from vjepa_cli.data.masks import apply_masks
from vjepa_cli.train.loss import anti_collapse, jepa_loss, normalize_targets

log = logging.getLogger(__name__)


MASK_BATCHING = ("packed", "per_mask")


class JepaModel(nn.Module):
    """Context encoder + predictor; `forward` returns the scalar loss of one batch.

    `mask_batching`: "packed" (one encoder and one predictor pass for all mask pairs) or "per_mask" (one of each
    per mask pair, the official order of operations); see the module doc.
    """

    def __init__(self, encoder: nn.Module, predictor: nn.Module, loss_exp: float = 1.0, reg_coeff: float = 0.0,
                 mask_batching: str = "packed"):
        super().__init__()
        if mask_batching not in MASK_BATCHING:
            raise ValueError(f"mask_batching must be one of {', '.join(MASK_BATCHING)}, got {mask_batching!r}")
        self.encoder, self.predictor = encoder, predictor
        self.loss_exp, self.reg_coeff, self.mask_batching = loss_exp, reg_coeff, mask_batching

    def packs(self, context_masks: list[Tensor]) -> bool:
        """Whether this batch takes the packed path (more than one mask pair and `mask_batching="packed"`)."""
        return self.mask_batching == "packed" and len(context_masks) > 1

    def forward(self, clips: Tensor, targets: Tensor, context_masks: list[Tensor], target_masks: list[Tensor],
                grid: tuple[int, int, int]) -> Tensor:
        """clips (B, C, T, H, W) float; targets (B, N, D) normalised target features; masks [(B, K_i)]."""
        if self.packs(context_masks):
            zs = self.encoder(clips, masks=context_masks, split=True)  # [(B, Kc_i, D)], one pass
            preds = self.predictor(zs, context_masks, target_masks, mask_index=0, grid=grid)  # [(B, Kt_i, D)]
        else:
            preds = []
            for i, (mc, mt) in enumerate(zip(context_masks, target_masks, strict=True)):
                z = self.encoder(clips, masks=[mc])  # (B, Kc, D)
                preds.append(self.predictor(z, mc, mt, mask_index=i, grid=grid))  # (B, Kt, D)
        tgts = [apply_masks(targets, [mt]) for mt in target_masks]  # [(B, Kt_i, D)]
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
