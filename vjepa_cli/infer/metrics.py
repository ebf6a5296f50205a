"""Intuitive-physics metrics over matched possible/impossible videos (Garrido et al. 2025, "Intuitive physics
understanding emerges from self-supervised pretraining on natural videos", evaluation code conventions).

Each video has a surprise curve (one value per window). A video's score is the max or the mean of its
curve. Conventions follow the published evaluation so numbers compare with the paper:
- pairwise ("relative") accuracy: the fraction of matched pairs whose possible video scores strictly
  lower than its impossible partner (a tie counts as wrong);
- AUROC: possible = positive class, score = -surprise (the same number as impossible = positive,
  score = surprise); computed from ranks (Mann-Whitney U), ties counted as one half;
- AUPRC: possible = positive class, score = -surprise, trapezoidal area under the precision-recall curve
  (sklearn `auc(recall, precision)` of `precision_recall_curve`, as the published code does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rankdata(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of ranks s+1 .. e
    return ranks


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (1 = positive), via Mann-Whitney U."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative example")
    r = rankdata(scores)
    u = r[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_recall_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct threshold (descending score), ending at (recall 0, precision 1)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / max(1, int(y.sum()))
    # sklearn's order: recall decreasing, then the (0, 1) end point; keep from the first full-recall point
    full = int(np.searchsorted(tp, tp[-1]))
    precision, recall = precision[: full + 1][::-1], recall[: full + 1][::-1]
    return np.r_[precision, 1.0], np.r_[recall, 0.0]


def auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Trapezoidal area under the precision-recall curve (labels: 1 = positive)."""
    labels = np.asarray(labels).astype(bool)
    if labels.sum() == 0:
        raise ValueError("AUPRC needs at least one positive example")
    p, r = precision_recall_curve(scores, labels)
    return float(np.sum((r[:-1] - r[1:]) * (p[:-1] + p[1:]) / 2.0))  # trapezoids; recall is decreasing


def pairwise_accuracy(possible: np.ndarray, impossible: np.ndarray) -> float:
    """Fraction of matched pairs where the possible video's score is strictly below the impossible one's."""
    possible, impossible = np.asarray(possible, np.float64), np.asarray(impossible, np.float64)
    if possible.shape != impossible.shape or possible.ndim != 1 or len(possible) == 0:
        raise ValueError("pairwise accuracy needs two equally long, non-empty 1-D arrays (matched pairs)")
    return float((possible < impossible).mean())


def peak_ratio(curve) -> float:
    """max / mean of a non-negative surprise curve (1 for a flat curve; inf for an all-zero one is avoided)."""
    c = np.asarray(curve, np.float64)
    return float(c.max() / max(c.mean(), 1e-12))


def physics_metrics(possible: Sequence[Sequence[float]], impossible: Sequence[Sequence[float]]) -> dict[str, float]:
    """Score matched surprise curves: `possible[i]` and `impossible[i]` are the curves of pair i.

    Returns pairwise accuracy, AUROC and AUPRC, each with three per-video scores of the curve: `max` and `mean`
    (Garrido et al. 2025), and `peak` = max / mean, the surprise peak relative to the video's own level, which
    does not depend on how hard the scene is to predict as a whole (keys `pairwise_acc_max`, ..., `auprc_peak`),
    and `pairs`.
    """
    if len(possible) != len(impossible) or not possible:
        raise ValueError("need the same non-zero number of possible and impossible curves (matched pairs)")
    out: dict[str, float] = {"pairs": float(len(possible))}
    for name, red in (("max", np.max), ("mean", np.mean), ("peak", peak_ratio)):
        p = np.array([red(np.asarray(c, np.float64)) for c in possible])
        q = np.array([red(np.asarray(c, np.float64)) for c in impossible])
        scores, labels = -np.r_[p, q], np.r_[np.ones(len(p)), np.zeros(len(q))]  # possible = positive
        out[f"pairwise_acc_{name}"] = pairwise_accuracy(p, q)
        out[f"auroc_{name}"] = auroc(scores, labels)
        out[f"auprc_{name}"] = auprc(scores, labels)
    return out
