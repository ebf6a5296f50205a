"""`synth-seg`: a dense probe on built-in data. Clips of the synthetic shapes videos (one shape drifting over a
grey texture, rendered in memory) get a label per token from the shape's mask: the shape (or its kind) where it
covers at least half of the token's tubelet x patch pixels, else background. A linear head per token is trained on
the frozen encoder's patch features and scored by the mean intersection-over-union over the classes (mIoU), the
usual segmentation score, computed from the confusion matrix of every validation token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa_cli.config.seg import SegProbeConfig
from vjepa_cli.data import synth_scenes as sc
from vjepa_cli.data.transforms import normalize_clips

COVER = 0.5  # a token is the shape's when the shape covers at least this share of its pixels
VAL_SEED_OFFSET = 1 << 20  # validation clips use other render seeds than the training ones


@dataclass
class SegResult:
    miou: float  # mean IoU over the classes (validation tokens)
    iou: list[float]  # per class
    classes: list[str]
    object_share: float  # share of validation tokens that are not background
    chance_miou: float  # mIoU of predicting every token as background
    train_miou: float
    extra: dict = field(default_factory=dict)


def class_names(cfg: SegProbeConfig) -> list[str]:
    return ["background", "shape"] if cfg.classes == "object" else ["background", *sc.SHAPES]


def token_labels(masks: np.ndarray, shape_class: int, tubelet: int, patch: int) -> np.ndarray:
    """Pixel coverage [T, S, S] of one clip -> int64 labels [T' * H' * W'] (token order t, h, w): `shape_class`
    where the mean coverage over the token's pixels is >= COVER, else 0."""
    t, h, w = masks.shape
    cover = masks.reshape(t // tubelet, tubelet, h // patch, patch, w // patch, patch).mean(axis=(1, 3, 5))
    return np.where(cover >= COVER, shape_class, 0).astype(np.int64).reshape(-1)


def make_clips(cfg: SegProbeConfig, n: int, offset: int, tubelet: int, patch: int) -> tuple[Tensor, Tensor]:
    """n clips uint8 (n, 3, T, S, S) and their token labels (n, N): video i is rendered as `vjepa synth`'s shapes
    video (seed, i + offset) would be, before video compression."""
    clips, labels = [], []
    for i in range(offset, offset + n):
        rng = np.random.default_rng([cfg.seed, 1, 0, i])  # as `vjepa synth` seeds shapes video i
        label = i % (len(sc.SHAPES) * len(sc.COLOURS))
        frames, masks = sc.render_shapes_with_masks(rng, label, cfg.frames, cfg.size)
        cls = 1 if cfg.classes == "object" else 1 + label // len(sc.COLOURS)
        clips.append(torch.from_numpy(frames).permute(3, 0, 1, 2))  # (3, T, S, S)
        labels.append(torch.from_numpy(token_labels(masks, cls, tubelet, patch)))
    return torch.stack(clips), torch.stack(labels)


@torch.no_grad()
def dense_features(encoder: nn.Module, clips: Tensor, batch: int, levels: str = "last",
                   device: torch.device | str = "cpu") -> Tensor:
    """uint8 clips (n, 3, T, S, S) -> frozen per-token features (n, N, D) (or (n, N, L*D) with levels 'all')."""
    out = []
    for i in range(0, len(clips), batch):
        x = normalize_clips(clips[i:i + batch], device)  # (b, 3, T, S, S) float
        out.append((encoder(x, hierarchical=True) if levels == "all" else encoder(x)).float().cpu())
    return torch.cat(out)


def confusion(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """(K, K) counts, rows = true class, columns = predicted class."""
    idx = target.reshape(-1) * num_classes + pred.reshape(-1)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(pred: Tensor, target: Tensor, num_classes: int) -> tuple[float, list[float]]:
    """Mean over classes of TP / (TP + FP + FN), pooled over every token; classes absent from both pred and target
    are left out of the mean (their IoU is reported as nan)."""
    c = confusion(pred, target, num_classes).double()
    tp = torch.diagonal(c)
    union = c.sum(0) + c.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    present = union > 0
    return float(iou[present].mean()) if present.any() else float("nan"), iou.tolist()


def fit_linear_head(x: Tensor, y: Tensor, num_classes: int, cfg: SegProbeConfig,
                    generator: torch.Generator) -> nn.Linear:
    """A linear head on standardised features x (M, C) for labels y (M,), full-batch AdamW on cross-entropy."""
    head = nn.Linear(x.shape[1], num_classes)
    nn.init.normal_(head.weight, std=0.01, generator=generator)
    nn.init.zeros_(head.bias)
    counts = torch.bincount(y, minlength=num_classes).double()
    weight = (counts.sum() / (num_classes * counts.clamp_min(1))).float() if cfg.balanced else None
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(head(x), y, weight=weight).backward()
        opt.step()
    return head


def run_seg_probe(encoder: nn.Module, cfg: SegProbeConfig, device: torch.device | str = "cpu") -> SegResult:
    """Train and score the synth-seg linear head on `encoder`'s frozen patch features (the encoder is not changed)."""
    was_training = encoder.training
    encoder.eval()
    tub, patch = encoder.tubelet_size, encoder.patch_size
    names = class_names(cfg)
    k = len(names)
    feats, labels = [], []
    for n, offset in ((cfg.train, 0), (cfg.val, VAL_SEED_OFFSET)):
        clips, y = make_clips(cfg, n, offset, tub, patch)
        feats.append(dense_features(encoder, clips, cfg.batch_size, cfg.levels, device).flatten(0, 1))  # (n*N, D)
        labels.append(y.reshape(-1))
    encoder.train(was_training)
    mean, std = feats[0].mean(0), feats[0].std(0).clamp_min(1e-6)
    xtr, xva = (feats[0] - mean) / std, (feats[1] - mean) / std
    head = fit_linear_head(xtr, labels[0], k, cfg, torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        pred_va, pred_tr = head(xva).argmax(-1), head(xtr).argmax(-1)
    score, iou = miou(pred_va, labels[1], k)
    return SegResult(miou=score, iou=iou, classes=names, object_share=float((labels[1] > 0).float().mean()),
                     chance_miou=miou(torch.zeros_like(labels[1]), labels[1], k)[0],
                     train_miou=miou(pred_tr, labels[0], k)[0])
