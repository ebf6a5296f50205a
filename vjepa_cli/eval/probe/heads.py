"""Probe heads, the hyperparameter grid trained in one pass, and classification metrics.

V-JEPA 2 (Assran et al., 2025) trains 20 attentive probes at once on the same frozen features, one per
(lr, wd) pair, and reports the best; the heads share every batch but nothing else (separate parameters,
separate AdamW state, per-head grad clipping), so training them together equals training them one by one.
Predictions over several spatial views are the mean of the views' softmax (`ClipAggregation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa_cli.config.probe import ProbeHeadConfig, ProbeOptimConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.layers import init_weights
from vjepa_cli.models.pooler import AttentiveClassifier


class LinearProbe(nn.Module):
    """Mean-pooled tokens -> standardised (BatchNorm without affine, as MAE's linear probe) -> Linear."""

    def __init__(self, dim: int, num_classes: int, generator: torch.Generator | None = None):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, num_classes)
        init_weights(self, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.norm(x.mean(dim=1)))  # (B, N, D) -> (B, C)


def build_head(cfg: ProbeHeadConfig, dim: int, num_classes: int, generator: torch.Generator | None = None) -> nn.Module:
    """One probe head of `cfg.kind` for tokens of width `dim`."""
    if cfg.kind == "linear":
        return LinearProbe(dim, num_classes, generator)
    if dim % cfg.num_heads:
        raise VjepaError(f"probe.num_heads={cfg.num_heads} does not divide the feature width {dim}",
                         "pick a divisor, e.g. --set probe.num_heads=" + str(math.gcd(dim, 16)))
    return AttentiveClassifier(dim, cfg.num_heads, num_classes, depth=cfg.depth, v2_style=cfg.kind == "attentive-v2",
                               generator=generator)


def _lr_at(base: float, final: float, step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


class HeadGrid(nn.Module):
    """Heads trained together: head h uses `grid[h]` = (lr, wd); cosine lr, constant or cosine wd."""

    def __init__(self, heads: list[nn.Module], grid: list[tuple[float, float]], cfg: ProbeOptimConfig,
                 total_steps: int, warmup_steps: int = 0):
        super().__init__()
        if len(heads) != len(grid):
            raise ValueError("one (lr, wd) pair per head")
        self.heads = nn.ModuleList(heads)
        self.grid, self.cfg, self.total, self.warmup, self.step_num = list(grid), cfg, total_steps, warmup_steps, 0
        groups = []
        for h, (lr, wd) in zip(heads, grid, strict=True):
            named = list(h.named_parameters())
            decay = [p for n, p in named if p.ndim > 1 and not n.endswith("bias")]
            other = [p for n, p in named if not (p.ndim > 1 and not n.endswith("bias"))]
            groups.append({"params": decay, "lr": lr, "weight_decay": wd, "base_lr": lr, "base_wd": wd})
            groups.append({"params": other, "lr": lr, "weight_decay": 0.0, "base_lr": lr, "base_wd": 0.0})
        self.opt = torch.optim.AdamW(groups, betas=cfg.betas)

    def _schedule(self) -> None:
        c, s = self.cfg, self.step_num
        for g in self.opt.param_groups:
            g["lr"] = _lr_at(g["base_lr"], c.final_lr, s, self.total, self.warmup)
            if c.wd_schedule == "cosine" and g["base_wd"] > 0:
                g["weight_decay"] = _lr_at(g["base_wd"], c.final_wd, s, self.total, 0)

    def train_step(self, x: Tensor, y: Tensor) -> list[float]:
        """One AdamW step of every head on tokens x (B, N, D) with labels y (B,); returns each head's loss."""
        self.train()
        self._schedule()
        losses = [F.cross_entropy(h(x), y) for h in self.heads]
        torch.stack(losses).sum().backward()  # heads are independent: each gets exactly its own gradient
        if self.cfg.grad_clip > 0:
            for h in self.heads:
                torch.nn.utils.clip_grad_norm_(h.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_num += 1
        return [float(v.detach()) for v in losses]

    @torch.no_grad()
    def predict(self, feats: Tensor, batch_size: int = 64) -> Tensor:
        """feats (n, V, N, D) -> probabilities (H, n, C): mean of the softmax over the V views."""
        self.eval()
        out = []
        for i in range(0, feats.shape[0], batch_size):
            x = feats[i:i + batch_size].float()  # (b, V, N, D)
            b, V = x.shape[:2]
            flat = x.flatten(0, 1)  # (b*V, N, D)
            out.append(torch.stack([h(flat).softmax(-1).view(b, V, -1).mean(1) for h in self.heads]))  # (H, b, C)
        return torch.cat(out, dim=1)


def train_grid(grid: HeadGrid, epoch_feats: Callable[[int], tuple[Tensor, Tensor]], epochs: int, batch_size: int,
               generator: torch.Generator, on_epoch: Callable[[int, float], None] | None = None) -> None:
    """Train `grid` for `epochs`; `epoch_feats(e)` gives that epoch's training tokens (n, N, D) and labels (n,)."""
    for e in range(epochs):
        x, y = epoch_feats(e)
        perm = torch.randperm(len(y), generator=generator)
        total, count = 0.0, 0
        for i in range(0, len(y), batch_size):
            b = perm[i:i + batch_size]
            if len(b) < 2 and len(y) >= 2:  # BatchNorm needs two samples; a 1-sample tail is dropped
                continue
            losses = grid.train_step(x[b].float(), y[b])
            total += sum(losses) / len(losses) * len(b)
            count += len(b)
        if on_epoch is not None:
            on_epoch(e, total / max(1, count))


def steps_per_epoch(n: int, batch_size: int) -> int:
    full, tail = divmod(n, batch_size)
    return full + (1 if tail >= 2 or (tail and n < 2) else 0)


def classification_metrics(probs: Tensor, labels: Tensor, num_classes: int) -> dict:
    """Top-1, top-5 (top-k with k = min(5, C)), per-class accuracy, mean class accuracy, confusion (rows = true)."""
    probs, labels = probs.float(), labels.long()
    pred = probs.argmax(-1)
    k = min(5, num_classes)
    topk = probs.topk(k, dim=-1).indices
    conf = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(conf, (labels.numpy(), pred.numpy()), 1)
    support = conf.sum(1)
    per_class = [float(conf[i, i] / support[i]) if support[i] else float("nan") for i in range(num_classes)]
    present = [v for v in per_class if not math.isnan(v)]
    return {
        "top1": float((pred == labels).float().mean()) if len(labels) else float("nan"),
        "top5": float((topk == labels[:, None]).any(-1).float().mean()) if len(labels) else float("nan"),
        "mean_class_acc": float(np.mean(present)) if present else float("nan"),
        "per_class": per_class,
        "confusion": conf,
    }
