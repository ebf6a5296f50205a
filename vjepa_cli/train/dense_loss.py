"""The pieces of the V-JEPA 2.1 objective (Mur-Labadia et al., 2026; official `app/vjepa_2_1/train.py` and
`models/utils/masks_dist.py`): per-level target normalisation, the distance weights of the dense context loss, the
context loss itself and the lambda of a step.

Context loss: L_ctx = mean over tokens and channels of |z_ctx - h[ctx]| ** p * w_i / p, a plain mean (not divided by
the sum of the weights), with w_i = 1 / sqrt(d_i) and d_i the Euclidean distance, in (t, h, w) token-grid units, from
context token i to the nearest target token of the same sample. Context and targets are disjoint, so d_i >= 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa_cli.config.objective import ObjectiveConfig
from vjepa_cli.train.schedules import lambda_warmup_hold

MAX_PAIRS = 1 << 24  # context x target distances computed at once (64 MiB of float32), so big batches fit


def normalize_levels(h: Tensor, levels: int) -> Tensor:
    """(..., L*D) -> each of the `levels` D-wide slices layer-normalised on its own, no affine parameters
    (F.layer_norm's eps 1e-5, as upstream); levels = 1 is the V-JEPA 1/2 target normalisation."""
    *lead, width = h.shape
    d = width // levels
    return F.layer_norm(h.reshape(*lead, levels, d), (d,)).reshape(*lead, width)


def grid_coords(ids: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """Token ids (B, K) -> float (t, h, w) positions (B, K, 3) on the grid (T', H', W') (id = t*H'*W' + h*W' + w)."""
    _, hh, ww = grid
    t, rest = ids // (hh * ww), ids % (hh * ww)
    return torch.stack([t, rest // ww, rest % ww], dim=-1).float()


@torch.no_grad()
def distance_weights(context_ids: Tensor, target_ids: Tensor, grid: tuple[int, int, int],
                     weighted: bool = True) -> Tensor:
    """(B, Kc) context ids, (B, Kt) target ids -> (B, Kc) weights 1 / sqrt(d_i) (all 1 when not `weighted`)."""
    if not weighted:
        return torch.ones(context_ids.shape, device=context_ids.device)
    pc, pt = grid_coords(context_ids, grid), grid_coords(target_ids, grid)  # (B, Kc, 3), (B, Kt, 3)
    kc, kt = pc.shape[1], pt.shape[1]
    rows = max(1, MAX_PAIRS // max(1, kc * kt))  # samples per chunk
    d = torch.cat([torch.cdist(pc[i:i + rows], pt[i:i + rows]).amin(-1) for i in range(0, len(pc), rows)])
    return d.clamp_min(1.0).rsqrt()  # (B, Kc); d >= 1 for disjoint masks, the clamp only guards overlaps


def context_loss(z: Tensor, h: Tensor, weights: Tensor, loss_exp: float = 1.0) -> Tensor:
    """mean(|z - h| ** p * w) / p over every token and channel; z, h (B, Kc, C), weights (B, Kc)."""
    diff = (z.float() - h.float()).abs()
    if loss_exp != 1.0:
        diff = diff.pow(loss_exp)
    return (diff * weights.unsqueeze(-1)).mean() / loss_exp


def context_lambda(obj: ObjectiveConfig, step: int, modality: str) -> float:
    """The context-loss weight at optimizer `step` (0-based) for a `modality` ("video" / "image") batch."""
    value = obj.lambda_img if modality == "image" else obj.lambda_vid
    if not obj.predict_context:
        return 0.0
    if not obj.lambda_progressive:
        return value
    return lambda_warmup_hold(step, value=value, start=obj.lambda_warmup[0], end=obj.lambda_warmup[1])
