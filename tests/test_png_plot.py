import numpy as np

from vjepa_cli.plot import colormap, draw_text, heatmap, image_grid, line_plot, stacked_plot


def test_line_plot_draws_series_where_expected():
    img = line_plot({"a": ([0, 1, 2], [0.0, 1.0, 2.0])}, size=(200, 150))
    assert img.shape == (150, 200, 3) and img.dtype == np.uint8
    blue = np.all(np.abs(img.astype(int) - (31, 119, 180)) < 30, axis=-1)
    ys, xs = np.nonzero(blue[:, 70:190])
    assert blue.sum() > 50
    # increasing series: further right means higher on the image (smaller row)
    order = np.argsort(xs)
    assert np.corrcoef(xs[order], ys[order])[0, 1] < -0.9


def test_stacked_plot_puts_each_panel_on_its_own_axis():
    """Two panels of very different scales: each series fills its own panel's height (own y axis)."""
    x = np.arange(50)
    img = stacked_plot([{"series": {"big": (x, 1000.0 * x)}}, {"series": {"small": (x, 0.001 * x)}}],
                       size=(300, 400))
    blue = np.all(np.abs(img.astype(int) - (31, 119, 180)) < 30, axis=-1)
    rows = np.nonzero(blue.any(1))[0]
    top, bottom = rows[rows < 200], rows[rows >= 200]
    assert np.ptp(top) > 80 and np.ptp(bottom) > 80  # neither line is flattened by the other's scale


def test_heatmap_colormap_grid_and_text():
    m = np.array([[5, 0], [1, 9]])
    hm = heatmap(m, ["x", "y"], ["x", "y"], cell=20, xlabel="predicted", ylabel="true")
    assert hm.ndim == 3 and hm.shape[2] == 3
    cm = colormap(np.array([0.0, 1.0]))
    assert tuple(cm[0]) != tuple(cm[1])
    g = image_grid([np.zeros((8, 8, 3), np.uint8)] * 3, ncols=2, pad=2)
    assert g.shape == (2 * 10 + 2, 2 * 10 + 2, 3)
    tiles = [np.full((16, 40, 3), 10 * i, np.uint8) for i in range(3)]
    lab = image_grid(tiles, ncols=3, pad=2, labels=["goal", "t1", "t2"])
    assert np.array_equal(lab[2 + 12:2 + 12 + 16, 2:42], tiles[0])  # pixels kept exactly under the label
    assert (lab[2:14, 2:42] < 128).any()  # the label is drawn (dark ink on white)
    img = np.full((20, 80, 3), 255, np.uint8)
    draw_text(img, 2, 2, "Lower case x")
    assert (img < 128).any() and (img[14:] == 255).all()  # ink only in the 12-pixel text band


def test_confusion_view_keeps_the_most_confused_classes():
    from vjepa_cli.eval.probe.outputs import confusion_view

    conf = np.diag(np.full(40, 10))
    conf[3, 7] = conf[7, 3] = 5  # classes 3 and 7 are confused with each other
    conf[30, 12] = 4
    assert confusion_view(conf, top_n=4)[:4] == [3, 7, 12, 30]
    assert confusion_view(conf[:4, :4], top_n=25) == [0, 1, 2, 3]


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
