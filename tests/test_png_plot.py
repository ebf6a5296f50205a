import struct
import zlib

import numpy as np
import pytest

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.png import encode_png, read_png, write_png
from vjepa_cli.plot import colormap, heatmap, image_grid, line_plot, nice_ticks


def _png_with_filters(img: np.ndarray) -> bytes:
    """Encode with a different filter on each row (a second, independent encoder for the reader)."""
    h, w, c = img.shape
    rows, prev = [], np.zeros(w * c, np.int32)
    for y in range(h):
        cur = img[y].reshape(-1).astype(np.int32)
        f = y % 5
        left = np.concatenate([np.zeros(c, np.int32), cur[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        if f == 0:
            pred = np.zeros_like(cur)
        elif f == 1:
            pred = left
        elif f == 2:
            pred = prev
        elif f == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([f]) + ((cur - pred) & 0xFF).astype(np.uint8).tobytes())
        prev = cur

    def chunk(k, d):
        return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def test_png_round_trip_and_filters(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", img)
    assert np.array_equal(read_png(tmp_path / "a.png"), img)
    (tmp_path / "f.png").write_bytes(_png_with_filters(img))
    assert np.array_equal(read_png(tmp_path / "f.png"), img)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    (tmp_path / "g.png").write_bytes(encode_png(grey))
    assert np.array_equal(read_png(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, 2))


def test_png_errors(tmp_path):
    with pytest.raises(VjepaError, match="not found"):
        read_png(tmp_path / "missing.png")
    (tmp_path / "x.png").write_bytes(b"hello")
    with pytest.raises(VjepaError, match="not a PNG"):
        read_png(tmp_path / "x.png")
    good = encode_png(np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "t.png").write_bytes(good[:40])
    with pytest.raises(VjepaError, match="corrupt"):
        read_png(tmp_path / "t.png")


def test_nice_ticks_cover_range():
    t = nice_ticks(0.13, 0.97)
    assert t[0] >= 0.13 and t[-1] <= 0.97 and 3 <= len(t) <= 7
    steps = np.diff(t)
    assert np.allclose(steps, steps[0])


def test_line_plot_draws_series_where_expected():
    img = line_plot({"a": ([0, 1, 2], [0.0, 1.0, 2.0])}, size=(200, 150))
    assert img.shape == (150, 200, 3) and img.dtype == np.uint8
    blue = np.all(img == (31, 119, 180), axis=-1)
    ys, xs = np.nonzero(blue[:, 70:190])  # ignore the legend swatch at the top right
    assert blue.sum() > 50
    # increasing series: further right means higher on the image (smaller row)
    order = np.argsort(xs)
    assert np.corrcoef(xs[order], ys[order])[0, 1] < -0.9


def test_heatmap_and_grid_shapes():
    m = np.array([[5, 0], [1, 9]])
    hm = heatmap(m, ["x", "y"], ["x", "y"], cell=20)
    assert hm.ndim == 3 and hm.shape[2] == 3
    cm = colormap(np.array([0.0, 1.0]))
    assert tuple(cm[0]) != tuple(cm[1])
    g = image_grid([np.zeros((8, 8, 3), np.uint8)] * 3, ncols=2, pad=2)
    assert g.shape == (2 * 10 + 2, 2 * 10 + 2, 3)


def test_atomic_write_respects_umask(tmp_path):
    import os

    from vjepa_cli.io.atomic import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind
