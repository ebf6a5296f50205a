"""The V-JEPA objective and collapse monitors.

Loss (Bardes et al. 2024, eq. 1; official `app/vjepa/train.py`): targets are the EMA encoder's features of the
full clip, layer-normalised over channels without affine parameters, gathered at the target tokens; the loss is
the mean over mask pairs of mean(|z - h| ** p) / p with p = `loss_exp` (1 = L1).

Optional anti-collapse term, off by default as in every official recipe: VICReg's variance hinge and
covariance penalty (Bardes, Ponce & LeCun 2022) on the predictions. Collapse monitors: per-channel feature
standard deviation, and the effective rank of Roy & Vetterli (2007) / RankMe (Garrido et al. 2023), exp of the
entropy of the normalised singular values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_targets(h: Tensor) -> Tensor:
    """(..., D) -> layer norm over D without affine parameters (the official target normalisation)."""
    return F.layer_norm(h, (h.shape[-1],))


def jepa_loss(preds: list[Tensor], targets: list[Tensor], loss_exp: float = 1.0) -> Tensor:
    """Mean over mask pairs of mean(|z - h| ** loss_exp) / loss_exp; z, h (B, K_i, D) per pair."""
    if len(preds) != len(targets) or not preds:
        raise ValueError(f"got {len(preds)} predictions for {len(targets)} targets")
    total = preds[0].new_zeros((), dtype=torch.float32)
    for z, h in zip(preds, targets, strict=True):
        diff = (z.float() - h.float()).abs()
        total = total + (diff.mean() if loss_exp == 1.0 else diff.pow(loss_exp).mean() / loss_exp)
    return total / len(preds)


def variance_covariance(z: Tensor, eps: float = 1e-4) -> tuple[Tensor, Tensor]:
    """VICReg terms of features z (..., D): (mean hinge relu(1 - std) per channel, sum of squared off-diagonal
    covariances / D), with statistics over every other dimension."""
    x = z.reshape(-1, z.shape[-1]).float()  # (M, D)
    x = x - x.mean(0)
    std = torch.sqrt(x.var(0) + eps)  # (D,)
    var_loss = F.relu(1.0 - std).mean()
    m, d = x.shape
    cov = (x.T @ x) / max(1, m - 1)  # (D, D)
    off = cov - torch.diag(torch.diagonal(cov))
    return var_loss, off.pow(2).sum() / d


def anti_collapse(preds: list[Tensor], cov_weight: float = 0.04) -> Tensor:
    """Mean over mask pairs of variance hinge + cov_weight * covariance penalty (multiply by reg_coeff)."""
    total = preds[0].new_zeros((), dtype=torch.float32)
    for z in preds:
        v, c = variance_covariance(z)
        total = total + v + cov_weight * c
    return total / len(preds)


@torch.no_grad()
def feature_std(h: Tensor) -> float:
    """Mean over channels of the standard deviation over all tokens and clips; h (..., D)."""
    x = h.reshape(-1, h.shape[-1]).float()
    return float(x.std(0).mean()) if x.shape[0] > 1 else 0.0


@torch.no_grad()
def effective_rank(h: Tensor, max_rows: int = 4096) -> float:
    """exp(entropy of the normalised singular values) of the (tokens, D) feature matrix (1 .. min(M, D))."""
    x = h.reshape(-1, h.shape[-1]).float()
    if x.shape[0] > max_rows:  # evenly spaced rows: deterministic and cheap
        x = x[torch.linspace(0, x.shape[0] - 1, max_rows, device=x.device).long()]
    s = torch.linalg.svdvals(x)
    p = s / s.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return float(torch.exp(entropy))
