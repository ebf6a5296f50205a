import numpy as np

from vjepa_cli.plot import colormap, heatmap, image_grid, line_plot, nice_ticks


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
