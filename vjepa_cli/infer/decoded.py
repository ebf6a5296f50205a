"""Pictures of decoded features: a grid (PNG) or a video (mp4) of context frames, the actual future, the
future decoded from the actual features, and the future decoded from the predicted features (one row per
sample of a generative decoder), with the per-step surprise under it.

Everything here works on uint8 frames `(T, S, S, 3)`; `decode_features` turns features into them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.errors import VjepaError

LABEL_W = 110  # pixels left of the frames for row labels
GREY = 235  # the empty cells (context columns of decoded rows)
BAR_H = 28  # the surprise strip


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Float frames in [0, 1] (any leading shape, channels last) -> uint8 numpy."""
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def decode_features(decoder, features: torch.Tensor, samples: int = 1, seed: int = 0) -> np.ndarray:
    """Features `(B, N, D)` -> uint8 frames `(S, B, T, H, W, 3)`; a generative decoder draws `samples`
    different decodings (noise from `seed`), a regression decoder gives one (S = 1)."""
    dev = next(decoder.parameters()).device
    s = samples if decoder.generative else 1
    out = decoder.sample(features.to(dev, torch.float32), s, torch.Generator().manual_seed(seed))
    return to_uint8(out)


@dataclass
class Prediction:
    """One window to draw: its real frames and the decodings of its future."""

    frames: np.ndarray  # uint8 (T, S, S, 3), the whole window
    context: int  # context frames (the first `context` of `frames`)
    decoded_target: np.ndarray | None  # uint8 (T - context, S, S, 3) from the actual features, or None
    decoded_pred: np.ndarray  # uint8 (samples, T - context, S, S, 3) from the predicted features
    step_error: np.ndarray  # (T' - context / tubelet,) surprise per predicted time step
    tubelet: int = 2
    title: str = ""
    labels: Sequence[str] = field(default_factory=lambda: ("imagined",))  # a row label per sample
    bar_label: str = "surprise (L1)"  # what `step_error` is
    tags: Sequence[str] | None = None  # column headers (default: ctx j, then +k)

    def rows(self) -> list[tuple[str, np.ndarray]]:
        """(label, uint8 (T, S, S, 3)) per row; the context columns of decoded rows are grey."""
        t, c = len(self.frames), self.context
        blank = np.full((c, *self.frames.shape[1:]), GREY, np.uint8)
        rows = [("actual", self.frames)]
        if self.decoded_target is not None:
            rows.append(("decoded actual", np.concatenate([blank, self.decoded_target[:t - c]])))
        for i, pred in enumerate(self.decoded_pred):
            name = self.labels[i] if i < len(self.labels) else f"{self.labels[0]} {i + 1}"
            rows.append((name, np.concatenate([blank, pred[:t - c]])))
        return rows


def _bar(width: int, height: int, value: float, vmax: float) -> np.ndarray:
    """A white strip with a red bar of `value / vmax` of its height and the value written in it."""
    from vjepa_cli.plot import draw_text

    img = np.full((height, width, 3), 255, np.uint8)
    h = int(round((height - 10) * min(1.0, value / vmax))) if vmax > 0 else 0
    if h:
        img[height - h:, 2:width - 2] = (214, 39, 40)
    draw_text(img, 2, 0, f"{value:.3f}"[: max(1, width // 6)])
    return img


def prediction_panel(p: Prediction, scale: int = 2, pad: int = 2) -> np.ndarray:
    """The grid: one column per frame, rows from `Prediction.rows`, the surprise per predicted step under it."""
    from vjepa_cli.plot import draw_text

    rows = p.rows()
    t, s = len(p.frames), p.frames.shape[1] * scale
    top = 24 if p.title else 12
    h = top + len(rows) * (s + pad) + BAR_H + pad
    w = LABEL_W + t * (s + pad)
    out = np.full((h, w, 3), 255, np.uint8)
    if p.title:
        draw_text(out, 2, 1, p.title[: w // 6])
    for j in range(t):
        tag = p.tags[j] if p.tags else f"ctx {j}" if j < p.context else f"+{j - p.context + 1}"
        draw_text(out, LABEL_W + j * (s + pad), top - 11, tag[: max(1, s // 6)], color=(90, 90, 90))
    for r, (label, frames) in enumerate(rows):
        y = top + r * (s + pad)
        draw_text(out, 2, y + s // 2 - 4, label[: LABEL_W // 6 - 1])
        for j in range(t):
            x = LABEL_W + j * (s + pad)
            out[y:y + s, x:x + s] = frames[j].repeat(scale, 0).repeat(scale, 1)
    y = top + len(rows) * (s + pad)
    draw_text(out, 2, y + 8, p.bar_label[: LABEL_W // 6 - 1])
    vmax = float(np.max(p.step_error)) if len(p.step_error) else 0.0
    for k, err in enumerate(p.step_error):
        x = LABEL_W + (p.context + k * p.tubelet) * (s + pad)
        bw = min(p.tubelet * (s + pad) - pad, w - x)
        if bw > 0:
            out[y:y + BAR_H, x:x + bw] = _bar(bw, BAR_H, float(err), vmax)
    return out


def stack_panels(panels: Sequence[np.ndarray], pad: int = 8) -> np.ndarray:
    """Panels one under the other (padded to the widest), white between them."""
    w = max(p.shape[1] for p in panels)
    parts = []
    for p in panels:
        parts += [np.pad(p, ((0, pad), (0, w - p.shape[1]), (0, 0)), constant_values=255)]
    return np.concatenate(parts)


def prediction_frames(p: Prediction, scale: int = 4, pad: int = 4) -> np.ndarray:
    """The window as a video: per frame, the rows side by side (labelled), a surprise bar under the future
    -> uint8 `(T, H, W, 3)`, sized even for H.264."""
    from vjepa_cli.plot import draw_text

    rows = p.rows()
    t, s = len(p.frames), p.frames.shape[1] * scale
    w = len(rows) * (s + pad) + pad
    h = 12 + s + BAR_H + 2 * pad
    vmax = float(np.max(p.step_error)) if len(p.step_error) else 0.0
    out = np.full((t, h + h % 2, w + w % 2, 3), 255, np.uint8)
    for j in range(t):
        for r, (label, frames) in enumerate(rows):
            x = pad + r * (s + pad)
            draw_text(out[j], x, 2, label[: s // 6])
            out[j, 12:12 + s, x:x + s] = frames[j].repeat(scale, 0).repeat(scale, 1)
        tag = f"{p.title} context {j + 1}/{p.context}" if j < p.context else f"{p.title} future +{j - p.context + 1}"
        if j >= p.context and len(p.step_error):
            k = min((j - p.context) // p.tubelet, len(p.step_error) - 1)
            out[j, 12 + s + pad:12 + s + pad + BAR_H, pad:w - pad] = _bar(w - 2 * pad, BAR_H,
                                                                           float(p.step_error[k]), vmax)
        draw_text(out[j], pad, h - 10, tag[: w // 6])
    return out


def write_picture(path: str | Path, predictions: Sequence[Prediction], fps: float = 4.0) -> Path:
    """`.png`: the panels stacked; `.mp4`: the windows' videos one after another. Written atomically."""
    from vjepa_cli.data.media import write_png, write_video

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".mp4"):
        raise VjepaError(f"cannot render to {path.name}", hint="--render must end in .png or .mp4")
    if not predictions:
        raise VjepaError(f"nothing to render to {path}")
    if suffix == ".png":
        return write_png(path, stack_panels([prediction_panel(p) for p in predictions]))
    clips = [prediction_frames(p) for p in predictions]
    h = max(c.shape[1] for c in clips)
    w = max(c.shape[2] for c in clips)
    seq = np.concatenate([np.pad(c, ((0, 0), (0, h - c.shape[1]), (0, w - c.shape[2]), (0, 0)), constant_values=255)
                          for c in clips])
    return write_video(path, seq, max(1, round(fps)), crf=18, preset="medium")
