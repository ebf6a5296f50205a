"""Clip transforms on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vjepa_cli.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_views,
    normalize_clips,
    random_resized_crop_params,
    short_side_resize,
    train_transform,
)


def _coords(t=3, h=40, w=60):
    """Frames whose pixels encode their coordinates: R = row, G = column, B = frame."""
    f = np.zeros((t, h, w, 3), np.uint8)
    f[..., 0] = np.arange(h)[None, :, None]
    f[..., 1] = np.arange(w)[None, None, :]
    f[..., 2] = np.arange(t)[:, None, None]
    return f


def test_crop_params_respect_scale_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, h, w = random_resized_crop_params(120, 160, (0.3, 1.0), (0.75, 1.35), rng)
        assert 0 <= top and top + h <= 120 and 0 <= left and left + w <= 160
        area = h * w / (120 * 160)
        assert 0.28 <= area <= 1.0
        assert 0.75 * 0.95 <= w / h <= 1.35 * 1.05


def test_crop_params_fallback_is_centre_crop_with_clamped_ratio():
    class Never:  # every draw asks for an impossible crop, so the fallback is used
        def uniform(self, lo, hi):
            return hi * 50

        def integers(self, lo, hi):
            raise AssertionError("no draw expected")

    # a very wide image: ratio 4 > 1.35 -> full height, width = round(h * 1.35), centred
    assert random_resized_crop_params(100, 400, (0.3, 1.0), (0.75, 1.35), Never()) == (0, 132, 100, 135)
    # a tall image: ratio 0.25 < 0.75 -> full width, height = round(w / 0.75), centred
    assert random_resized_crop_params(400, 100, (0.3, 1.0), (0.75, 1.35), Never()) == (133, 0, 133, 100)


def test_train_transform_full_crop_is_identity_and_shared_across_frames():
    f = _coords(t=4, h=32, w=32)
    # scale (1, 1) and ratio (1, 1) on a square frame: the crop is the whole frame, no resize
    out = train_transform(f, 32, (1.0, 1.0), (1.0, 1.0), flip=False, rng=np.random.default_rng(0))
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.uint8
    np.testing.assert_array_equal(out.permute(1, 2, 3, 0).numpy(), f)


def test_train_transform_crop_location_and_flip():
    f = _coords(t=2, h=40, w=60)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        top, left, h, w = random_resized_crop_params(40, 60, (0.3, 1.0), (0.75, 1.35), np.random.default_rng(seed))
        flipped = np.random.default_rng(seed)
        random_resized_crop_params(40, 60, (0.3, 1.0), (0.75, 1.35), flipped)
        flipped = flipped.random() < 0.5
        out = train_transform(f, 16, (0.3, 1.0), (0.75, 1.35), flip=True, rng=rng).float()  # (3, T, 16, 16)
        rows, cols = out[0, 0, :, 0], out[1, 0, 0, :]  # R = source row, G = source column
        assert abs(rows[0].item() - (top + (h / 16 - 1) / 2)) <= 1.0  # first output row samples the crop top
        expect_first_col = left + w - 1 - (w / 16 - 1) / 2 if flipped else left + (w / 16 - 1) / 2
        assert abs(cols[0].item() - expect_first_col) <= 1.0
        assert (out[2, 1] == 1).all() and (out[2, 0] == 0).all()  # frames stay in order
        assert torch.equal(out[:2, 0], out[:2, 1])  # same crop for every frame


def test_eval_views_centre_and_along_long_side():
    f = _coords(t=2, h=40, w=80)  # short side 40 -> 20: frames become 20 x 40
    (centre,) = eval_views(f, 20, 1)
    assert centre.shape == (3, 2, 20, 20)
    x = short_side_resize(torch.from_numpy(f).permute(0, 3, 1, 2), 20)
    assert tuple(x.shape[-2:]) == (20, 40)
    assert torch.equal(centre, x[..., :, 10:30].permute(1, 0, 2, 3))
    views = eval_views(f, 20, 3)
    assert torch.equal(views[0], x[..., :, 0:20].permute(1, 0, 2, 3))
    assert torch.equal(views[1], centre)
    assert torch.equal(views[2], x[..., :, 20:40].permute(1, 0, 2, 3))


def test_normalize_clips_matches_formula():
    clips = torch.randint(0, 256, (2, 3, 2, 4, 4), dtype=torch.uint8)
    out = normalize_clips(clips, "cpu", torch.float32)
    for c in range(3):
        ref = (clips[:, c].double() / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(out[:, c].double(), ref, atol=1e-5, rtol=0)
    assert normalize_clips(clips, None, torch.bfloat16).dtype == torch.bfloat16
    single = normalize_clips(clips[0], "cpu")
    torch.testing.assert_close(single, out[0])


@pytest.mark.parametrize("h,w", [(32, 48), (48, 32)])
def test_short_side_resize_keeps_aspect(h, w):
    x = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    y = short_side_resize(x, 16)
    assert min(y.shape[-2:]) == 16 and math.isclose(max(y.shape[-2:]), 24)


def test_uint8_resize_matches_float_reference():
    from vjepa_cli.data.transforms import resize_frames

    x = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8)
    for size in [(16, 16), (64, 80)]:
        ref = torch.nn.functional.interpolate(x.double(), size=size, mode="bilinear", antialias=True,
                                              align_corners=False)
        out = resize_frames(x, size)
        assert out.dtype == torch.uint8 and out.shape == (2, 3, *size)
        assert (out.double() - ref).abs().max() <= 1.0
