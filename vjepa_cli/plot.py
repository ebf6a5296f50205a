"""Figures as uint8 RGB arrays (written with `vjepa_cli.data.media.write_png`), drawn with matplotlib's Agg
backend (no display needed): line plots, stacked panels on their own y axes, confusion matrices, and image
grids with real text labels.

Every function builds its own `Figure` (never pyplot's global state), so it is safe in threads and leaks
nothing between calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
Series = dict[str, tuple[Sequence[float], Sequence[float]]]


def _figure(width: int, height: int, dpi: int = 100):
    from matplotlib.figure import Figure

    return Figure(figsize=(width / dpi, height / dpi), dpi=dpi)


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib Figure to uint8 RGB [H, W, 3]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _plot_series(ax, series: Series, logy: bool, styles: dict[str, dict] | None = None) -> None:
    for i, (name, (x, y)) in enumerate(series.items()):
        style = {"color": COLORS[i % len(COLORS)], "linewidth": 1.6, **(styles or {}).get(name, {})}
        ax.plot(np.asarray(x, float), np.asarray(y, float), label=name, **style)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)


def line_plot(series: Series, title: str = "", xlabel: str = "", ylabel: str = "", size: tuple[int, int] = (640, 400),
              logy: bool = False, hlines: dict[str, float] | None = None,
              styles: dict[str, dict] | None = None) -> np.ndarray:
    """Named (x, y) series on one axis; `hlines` adds labelled horizontal lines, `styles` per-series matplotlib
    keywords (e.g. a dashed, thicker line drawn on top). Returns uint8 RGB [size[1], size[0], 3]."""
    fig = _figure(*size)
    ax = fig.add_subplot()
    _plot_series(ax, series, logy, styles)
    for i, (name, v) in enumerate((hlines or {}).items()):
        ax.axhline(v, color="0.4", linestyle=(0, (4, 2 + i)), linewidth=1, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(series) + len(hlines or {}) > 1 or (series and next(iter(series))):
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return figure_to_array(fig)


def stacked_plot(panels: Sequence[dict], title: str = "", xlabel: str = "", size: tuple[int, int] = (720, 640),
                 ) -> np.ndarray:
    """Panels sharing the x axis, each on its own y axis: dicts with `series`, and optional `ylabel`, `logy`,
    `hlines` (labelled horizontal lines). Returns uint8 RGB."""
    fig = _figure(*size)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        _plot_series(ax, panel["series"], panel.get("logy", False))
        for name, v in panel.get("hlines", {}).items():
            ax.axhline(v, color="0.4", linestyle="--", linewidth=1, label=name)
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.legend(fontsize=8, loc="best")
    axes[0].set_title(title)
    axes[-1].set_xlabel(xlabel)
    fig.tight_layout()
    return figure_to_array(fig)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with viridis."""
    from matplotlib import colormaps

    v = np.clip(np.nan_to_num(np.asarray(values, float)), 0, 1)
    return (colormaps["viridis"](v)[..., :3] * 255).round().astype(np.uint8)


def heatmap(matrix: np.ndarray, row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
            title: str = "", cell: int = 28, annotate: bool = True, xlabel: str = "", ylabel: str = "",
            values: np.ndarray | None = None) -> np.ndarray:
    """A matrix as coloured cells with its labels (e.g. a confusion matrix: rows = true); `values` (default
    the matrix) are the numbers written in the cells when `annotate`. Returns uint8 RGB."""
    m = np.asarray(matrix, float)
    R, C = m.shape
    label_w = max([len(str(s)) for s in (*row_labels, "")] + [1]) * 7
    w = max(320, min(2400, C * cell + label_w + 140))
    h = max(260, min(2400, R * cell + max([len(str(s)) for s in (*col_labels, "")] + [1]) * 6 + 110))
    fig = _figure(w, h)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    font = max(5, min(9, cell // 3))
    if row_labels:
        ax.set_yticks(range(R), [str(s) for s in row_labels], fontsize=font)
    if col_labels:
        ax.set_xticks(range(C), [str(s) for s in col_labels], fontsize=font, rotation=60, ha="right",
                      rotation_mode="anchor")
    if annotate and cell >= 14:
        shown = np.asarray(values if values is not None else m, float)
        hi = m.max() if m.size else 0
        for r in range(R):
            for c in range(C):
                v = shown[r, c]
                s = f"{int(v)}" if float(v).is_integer() else f"{v:.2f}"
                ax.text(c, r, s, ha="center", va="center", fontsize=font,
                        color="black" if m[r, c] > 0.6 * hi else "white")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return figure_to_array(fig)


def text_image(text: str, width: int, height: int = 12, color=(0, 0, 0), background: int = 255) -> np.ndarray:
    """`text` rendered with matplotlib's font into a uint8 RGB strip [height, width, 3] (cut at the right)."""
    fig = _figure(width, height)
    fig.patch.set_facecolor(np.full(3, background / 255))
    fig.text(1 / width, 0.5, text, va="center", ha="left", fontsize=max(5.0, height * 0.62),
             color=np.asarray(color) / 255)
    return figure_to_array(fig)


def draw_text(img: np.ndarray, x: int, y: int, text: str, color=(0, 0, 0), scale: int = 1) -> None:
    """Write `text` onto `img` in place with its top-left corner at (x, y), 12 * scale pixels high (the ink
    only: the background under the text is kept)."""
    h = 12 * scale
    w = img.shape[1] - x
    if w <= 0 or y >= img.shape[0] or not text:
        return
    strip = text_image(text, w, h).astype(np.float32)
    ink = 1.0 - strip.mean(-1, keepdims=True) / 255.0  # 0 background .. 1 full ink
    region = img[y:y + h, x:x + w]
    ink = ink[:region.shape[0], :region.shape[1]]
    region[:] = (region * (1 - ink) + np.asarray(color, np.float32) * ink).round().astype(np.uint8)


def image_grid(images: Sequence[np.ndarray], ncols: int, pad: int = 4, labels: Sequence[str] | None = None,
               background: int = 255) -> np.ndarray:
    """Tile equally sized uint8 RGB images into a grid (pixels kept exactly), optionally with a label above each."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    h, w = images[0].shape[:2]
    lab_h = 12 if labels else 0
    nrows = math.ceil(len(images) / ncols)
    out = np.full((nrows * (h + pad + lab_h) + pad, ncols * (w + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad + lab_h), pad + c * (w + pad)
        if labels:
            out[y:y + lab_h, x:x + w] = text_image(str(labels[i]), w, lab_h, background=background)
        out[y + lab_h : y + lab_h + h, x : x + w] = im if im.ndim == 3 else im[..., None]
    return out
