"""`vjepa viz` (PCA colours of patch features) and `vjepa viz-masks` (a recipe's masks over a clip)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _eval_helpers import save_tiny_model, write_index_video

from vjepa_cli.infer.viz import TARGET_RGB, draw_masks, pca_rgb, upsample_tokens


def test_pca_rgb_recovers_planted_components():
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(32, 3, generator=g))  # 3 orthonormal directions in R^32
    coef = torch.randn(500, 3, generator=g) * torch.tensor([5.0, 3.0, 1.5])  # decreasing variance
    x = coef @ basis.T + 0.01 * torch.randn(500, 32, generator=g) + 7.0
    rgb = pca_rgb(x)
    assert rgb.shape == (500, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # second implementation: numpy SVD of the centred data; channel i follows component i (up to sign)
    xc = x.double().numpy() - x.double().numpy().mean(0)
    ref = xc @ np.linalg.svd(xc, full_matrices=False)[2][:3].T
    for i in range(3):
        inner = (rgb[:, i] > 0.02) & (rgb[:, i] < 0.98)  # outside the 1-99 % clipping
        assert abs(np.corrcoef(rgb[inner, i], ref[inner, i])[0, 1]) > 0.999
        assert abs(np.corrcoef(rgb[inner, i], coef[inner, i].numpy())[0, 1]) > 0.99
    # colours depend on the data, not on the SVD routine's arbitrary signs: reordering tokens reorders colours,
    # and negated features (same components, negated projections) give mirrored colours
    perm = torch.randperm(500, generator=g)
    np.testing.assert_allclose(pca_rgb(x[perm]), rgb[perm.numpy()], atol=1e-6)
    np.testing.assert_allclose(pca_rgb(-x), 1 - rgb, atol=1e-6)


def test_upsample_tokens():
    c = np.zeros((2, 1, 2, 3))
    c[1, 0, 1] = 1.0
    up = upsample_tokens(c, tubelet=2, patch=4)
    assert up.shape == (4, 4, 8, 3) and up.dtype == np.uint8
    assert up[2:, :, 4:].min() == 255 and up[:2].max() == 0 and up[2:, :, :4].max() == 0


def test_draw_masks_colours():
    frames = np.full((4, 8, 8, 3), 200, np.uint8)  # grid (2, 2, 2), patch 4, tubelet 2
    img = draw_masks(frames, (2, 2, 2), 4, 2, [(np.array([0, 1]), np.array([2, 4, 5, 6, 7]))], ["m"])
    pad, lab = 4, 12
    y, x0 = lab + pad + lab, pad  # first row of cells, first time step
    cell = img[y:y + 8, x0:x0 + 8]
    assert (cell[:4] == 200).all()  # tokens 0, 1: context, shown as they are
    np.testing.assert_allclose(cell[5, 1], (0.35 * 200 + 0.65 * TARGET_RGB).round(), atol=1)  # token 2: target
    assert (cell[5, 5] == 60).all()  # token 3: neither -> darkened
    x1 = pad + 8 + pad
    assert (img[y:y + 8, x1:x1 + 8, 0] > img[y:y + 8, x1:x1 + 8, 1]).all()  # step 1: all targets (red)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("viz")
    write_index_video(d / "a.mp4", 20)
    return d, save_tiny_model(d / "model.safetensors", predictor=False)


def test_viz_cli_mp4_and_png(media, run_cli, tmp_path):
    from vjepa_cli.data.media import probe_video, read_image

    d, model = media
    args = ["--model", model, "--frames", "4", "--frame-step", "1", "--json"]
    r = run_cli("viz", d / "a.mp4", "-o", tmp_path / "v.mp4", *args)
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["windows"] == 5 and res["grid"] == [2, 2, 2]
    info = probe_video(tmp_path / "v.mp4")
    assert info.num_frames == 20 and info.height == 256 and info.width == (2 * 32 + 4) * 8  # frame | gap | PCA, x8
    r = run_cli("viz", d / "a.mp4", "-o", tmp_path / "v.png", *args, "--max-windows", "2")
    assert r.code == 0, r
    assert read_image(tmp_path / "v.png").ndim == 3
    r = run_cli("viz", d / "a.mp4", "-o", tmp_path / "v.gif", *args)
    assert r.code == 1 and ".mp4 or .png" in r.err
    r = run_cli("viz", d / "a.mp4", "-o", tmp_path / "b.png", *args, "--max-windows", "2", "--dtype", "bf16")
    assert r.code == 0 and read_image(tmp_path / "b.png").shape == read_image(tmp_path / "v.png").shape, r


def test_viz_masks_cli(run_cli, tmp_path):
    from vjepa_cli.data.media import read_image

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {arch: vit_tiny, img_size: 64, num_frames: 8}\n"
                      "data: {frames_per_clip: 8, crop_size: 64}\nmask: {kind: mixed}\n")
    r = run_cli("viz-masks", recipe, "-o", tmp_path / "m.png", "--samples", "2", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["masks"] == 2 * 3 and res["grid"] == [4, 4, 4]  # 2 multiblock generators + 1 future, x2 steps
    assert "context 50%, target 50%" in res["labels"][2]  # the future mask: first half of time is context
    assert read_image(tmp_path / "m.png").shape[2] == 3
    r = run_cli("viz-masks", recipe, "-o", tmp_path / "m.png", "--set", "mask.kinx=tube")
    assert r.code == 1 and "mask.kind" in r.err
