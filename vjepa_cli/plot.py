"""Small numpy plotting for reports: line plots, heatmaps and image grids as uint8 RGB arrays.

No plotting library is a dependency; a 5x7 bitmap font draws labels. Write results with
`vjepa_cli.data.media.write_png`. Deliberately simple: axes, ticks, a title, a legend, colours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# 5x7 glyphs, one string of 7 rows of 5 bits per character (lower case is drawn as upper case).
_GLYPHS = {
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11110 00001 00001 01110 00001 00001 11110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001", "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110", "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111", "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111", "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110", "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001", "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001", "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110", "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101", "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110", "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110", "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010", "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100", "Z": "11111 00001 00010 00100 01000 10000 11111",
    " ": "00000 00000 00000 00000 00000 00000 00000", ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000", ":": "00000 01100 01100 00000 01100 01100 00000",
    "-": "00000 00000 00000 11111 00000 00000 00000", "+": "00000 00100 00100 11111 00100 00100 00000",
    "/": "00001 00010 00010 00100 01000 01000 10000", "%": "11001 11010 00010 00100 01000 01011 10011",
    "(": "00010 00100 01000 01000 01000 00100 00010", ")": "01000 00100 00010 00010 00010 00100 01000",
    "=": "00000 00000 11111 00000 11111 00000 00000", "_": "00000 00000 00000 00000 00000 00000 11111",
    "x": "00000 00000 10001 01010 00100 01010 10001", "[": "01110 01000 01000 01000 01000 01000 01110",
    "]": "01110 00010 00010 00010 00010 00010 01110", "#": "01010 01010 11111 01010 11111 01010 01010",
    "?": "01110 10001 00001 00010 00100 00000 00100", "'": "00100 00100 01000 00000 00000 00000 00000",
    "<": "00010 00100 01000 10000 01000 00100 00010", ">": "01000 00100 00010 00001 00010 00100 01000",
}
_FONT = {k: np.array([[c == "1" for c in row] for row in v.split()], bool) for k, v in _GLYPHS.items()}

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def text_width(text: str, scale: int = 1) -> int:
    return len(text) * 6 * scale


def draw_text(img: np.ndarray, x: int, y: int, text: str, color=(0, 0, 0), scale: int = 1) -> None:
    """Draw `text` with its top-left corner at (x, y), clipped to the image."""
    h, w = img.shape[:2]
    for i, ch in enumerate(text):
        g = _FONT.get(ch, _FONT.get(ch.upper(), _FONT["?"]))
        if scale > 1:
            g = g.repeat(scale, 0).repeat(scale, 1)
        x0 = x + i * 6 * scale
        ys, xs = np.nonzero(g)
        ys, xs = ys + y, xs + x0
        ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        img[ys[ok], xs[ok]] = color


def draw_line(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color, width: int = 1) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    h, w = img.shape[:2]
    for d in range(-(width // 2), width - width // 2):
        for xx, yy in ((xs + d, ys), (xs, ys + d)):
            ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            img[yy[ok], xx[ok]] = color


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.0e}"
    return f"{v:.4g}"


@dataclass(frozen=True)
class _Axes:
    """The plot area in pixels and the data range it shows."""

    left: int
    top: int
    pw: int  # plot width, pixels
    ph: int  # plot height, pixels
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x):
        return self.left + (np.asarray(x, float) - self.x0) / (self.x1 - self.x0) * self.pw

    def py(self, y):
        return self.top + self.ph - (np.asarray(y, float) - self.y0) / (self.y1 - self.y0) * self.ph


def _data_range(xs_all: list[np.ndarray], ys_all: list[np.ndarray], extra: list[float]) -> tuple[float, ...]:
    """(x0, x1, y0, y1) covering every finite point and the horizontal lines, y padded by 5 %."""
    finite = [a[np.isfinite(a)] for a in ys_all] + [np.asarray(extra, float)]
    ycat = np.concatenate(finite) if finite else np.zeros(1)
    xcat = np.concatenate(xs_all) if xs_all else np.zeros(1)
    if ycat.size == 0:
        ycat = np.zeros(1)
    x0, x1 = float(xcat.min()), float(xcat.max()) if xcat.size else 1.0
    y0, y1 = float(ycat.min()), float(ycat.max())
    if x1 <= x0:
        x1 = x0 + 1
    pad = (y1 - y0) * 0.05 or 0.5
    return x0, x1, y0 - pad, y1 + pad


def _draw_grid(img: np.ndarray, ax: _Axes, logy: bool) -> None:
    grey = (225, 225, 225)
    for t in nice_ticks(ax.y0, ax.y1):
        yy = float(ax.py(t))
        draw_line(img, ax.left, yy, ax.left + ax.pw, yy, grey)
        label = _fmt(10**t) if logy else _fmt(t)
        draw_text(img, ax.left - 4 - text_width(label), int(yy) - 3, label)
    for t in nice_ticks(ax.x0, ax.x1):
        xx = float(ax.px(t))
        draw_line(img, xx, ax.top, xx, ax.top + ax.ph, grey)
        label = _fmt(t)
        draw_text(img, int(xx) - text_width(label) // 2, ax.top + ax.ph + 6, label)
    draw_line(img, ax.left, ax.top, ax.left, ax.top + ax.ph, (0, 0, 0))
    draw_line(img, ax.left, ax.top + ax.ph, ax.left + ax.pw, ax.top + ax.ph, (0, 0, 0))


def _draw_hlines(img: np.ndarray, ax: _Axes, hlines: dict[str, float], logy: bool) -> None:
    """Dashed, labelled horizontal lines (reference levels)."""
    for name, value in hlines.items():
        yy = float(ax.py(math.log10(value) if logy else value))
        for xs in range(ax.left, ax.left + ax.pw, 8):
            draw_line(img, xs, yy, min(xs + 4, ax.left + ax.pw), yy, (120, 120, 120))
        draw_text(img, ax.left + ax.pw - text_width(name) - 2, int(yy) - 10, name, (90, 90, 90))


def _draw_series(img: np.ndarray, ax: _Axes, xs_all: list[np.ndarray], ys_all: list[np.ndarray]) -> None:
    for i, (x, y) in enumerate(zip(xs_all, ys_all, strict=True)):
        color = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(y)
        X, Y = ax.px(x[ok]), ax.py(y[ok])
        if len(X) == 1:
            draw_line(img, X[0] - 2, Y[0], X[0] + 2, Y[0], color, 3)
        for a in range(len(X) - 1):
            draw_line(img, X[a], Y[a], X[a + 1], Y[a + 1], color, 2)


def _draw_legend(img: np.ndarray, ax: _Axes, names: Sequence[str]) -> None:
    ly = ax.top + 6
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        lx = ax.left + ax.pw - text_width(name) - 26
        draw_line(img, lx, ly + 3, lx + 14, ly + 3, color, 3)
        draw_text(img, lx + 18, ly, name)
        ly += 11


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str = "", xlabel: str = "",
              ylabel: str = "", size: tuple[int, int] = (640, 400), logy: bool = False,
              hlines: dict[str, float] | None = None) -> np.ndarray:
    """Plot named (x, y) series; returns uint8 RGB [H, W, 3]. `hlines` draws labelled horizontal lines."""
    W, H = size
    img = np.full((H, W, 3), 255, np.uint8)
    left, right, top, bottom = 64, 16, 28 if title else 12, 40
    xs_all = [np.asarray(x, float) for x, _ in series.values()]
    ys_all = [np.asarray(y, float) for _, y in series.values()]
    if logy:
        ys_all = [np.log10(np.clip(y, 1e-12, None)) for y in ys_all]
    extra = [math.log10(v) if logy else v for v in (hlines or {}).values()]
    ax = _Axes(left, top, W - left - right, H - top - bottom, *_data_range(xs_all, ys_all, extra))
    _draw_grid(img, ax, logy)
    _draw_hlines(img, ax, hlines or {}, logy)
    _draw_series(img, ax, xs_all, ys_all)
    if title:
        draw_text(img, (W - text_width(title, 2)) // 2, 6, title, scale=2)
    if xlabel:
        draw_text(img, left + (ax.pw - text_width(xlabel)) // 2, H - 14, xlabel)
    if ylabel:
        draw_text(img, 4, top - 12 if title else 2, ylabel)
    if len(series) > 1 or (series and next(iter(series))):
        _draw_legend(img, ax, list(series))
    return img


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with a perceptually ordered blue-green-yellow ramp."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
    v = np.clip(np.nan_to_num(np.asarray(values, float)), 0, 1) * (len(stops) - 1)
    i = np.minimum(v.astype(int), len(stops) - 2)
    f = (v - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def heatmap(matrix: np.ndarray, row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
            title: str = "", cell: int = 28, annotate: bool = True) -> np.ndarray:
    """Draw a matrix (e.g. a confusion matrix, rows = true) as coloured cells; returns uint8 RGB."""
    m = np.asarray(matrix, float)
    R, C = m.shape
    lab = max([text_width(str(s)) for s in row_labels] + [0]) + 8
    top = (24 if title else 6) + (max([text_width(str(s)) for s in col_labels] + [0]) and 14)
    img = np.full((top + R * cell + 6, lab + C * cell + 6, 3), 255, np.uint8)
    span = m.max() - m.min()
    norm = (m - m.min()) / span if span > 0 else np.zeros_like(m)
    colors = colormap(norm)
    for r in range(R):
        for c in range(C):
            y, x = top + r * cell, lab + c * cell
            img[y : y + cell - 1, x : x + cell - 1] = colors[r, c]
            if annotate and cell >= 18:
                v = m[r, c]
                s = f"{int(v)}" if float(v).is_integer() else f"{v:.2f}".lstrip("0")
                s = s[: max(1, (cell - 2) // 6)]
                ink = (0, 0, 0) if norm[r, c] > 0.6 else (255, 255, 255)
                draw_text(img, x + (cell - text_width(s)) // 2, y + cell // 2 - 4, s, ink)
    for r, s in enumerate(row_labels):
        draw_text(img, 2, top + r * cell + cell // 2 - 4, str(s))
    for c, s in enumerate(col_labels):
        s = str(s)[: max(1, cell // 6)]
        draw_text(img, lab + c * cell + (cell - text_width(s)) // 2, top - 12, s)
    if title:
        draw_text(img, 4, 4, title, scale=2)
    return img


def image_grid(images: Sequence[np.ndarray], ncols: int, pad: int = 4, labels: Sequence[str] | None = None,
               background: int = 255) -> np.ndarray:
    """Tile equally sized uint8 RGB images into a grid, optionally with a label above each."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    h, w = images[0].shape[:2]
    lab_h = 10 if labels else 0
    nrows = math.ceil(len(images) / ncols)
    out = np.full((nrows * (h + pad + lab_h) + pad, ncols * (w + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad + lab_h), pad + c * (w + pad)
        if labels:
            draw_text(out, x, y, str(labels[i])[: max(1, w // 6)])
        out[y + lab_h : y + lab_h + h, x : x + w] = im if im.ndim == 3 else im[..., None]
    return out
