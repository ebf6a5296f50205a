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
    to_ctwh,
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
    # the decoder's layout [B, T, H, W, C] (frozen-model windows) gives the same numbers in the model's layout
    hwc = clips.permute(0, 2, 3, 4, 1).contiguous()  # (B, T, H, W, C)
    assert torch.equal(normalize_clips(hwc, channels_last=True), out)
    assert torch.equal(normalize_clips(hwc[0], channels_last=True), out[0])


@pytest.mark.parametrize("h,w", [(32, 48), (48, 32)])
def test_short_side_resize_keeps_aspect(h, w):
    x = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    y = short_side_resize(x, 16)
    assert min(y.shape[-2:]) == 16 and math.isclose(max(y.shape[-2:]), 24)


def test_uint8_resize_matches_float_reference():
    from vjepa_cli.data.transforms import resize_frames

    gen = torch.Generator().manual_seed(621)  # a draw whose worst pixel is off by exactly 1 (of 3,000 seeds)
    x = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8, generator=gen)
    for size in [(16, 16), (64, 80)]:
        ref = torch.nn.functional.interpolate(x.double(), size=size, mode="bilinear", antialias=True,
                                              align_corners=False)
        out = resize_frames(x, size)
        assert out.dtype == torch.uint8 and out.shape == (2, 3, *size)
        # at most 1 grey level off; the reference itself carries double rounding (1 + 1.4e-14 was seen)
        assert (out.double() - ref).abs().max() <= 1.0 + 1e-9


def reference_train_transform(frames, crop_size, scale, ratio, flip, rng):
    """The transform written plainly (the pre-optimisation code path): crop, channels-last antialiased
    resize, flip on [T, C, H, W], permute to [C, T, H, W]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, C, H, W)
    top, left, h, w = random_resized_crop_params(x.shape[-2], x.shape[-1], scale, ratio, rng)
    x = x[..., top:top + h, left:left + w]
    if (h, w) != (crop_size, crop_size):
        x = torch.nn.functional.interpolate(x.contiguous(memory_format=torch.channels_last), size=(crop_size, crop_size),
                                            mode="bilinear", align_corners=False, antialias=True)
    if flip and rng.random() < 0.5:
        x = x.flip(-1)
    return x.permute(1, 0, 2, 3).contiguous()


def reference_eval_views(frames, crop_size, num_views):
    """Short-side resize, then a centre crop or crops evenly spaced along the long side, written plainly."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    h, w = x.shape[-2:]
    c = crop_size
    size = (c, max(c, round(w * c / h))) if h <= w else (max(c, round(h * c / w)), c)
    if size != (h, w):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    h, w = size
    if num_views == 1:
        crops = [x[..., (h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]]
    else:
        offs = [round(k * (max(h, w) - c) / (num_views - 1)) for k in range(num_views)]
        crops = [x[..., o:o + c, :c] if h > w else x[..., :c, o:o + c] for o in offs]
    return [v.permute(1, 0, 2, 3).contiguous() for v in crops]


@pytest.mark.parametrize("case", range(40))
def test_train_transform_is_bit_identical_to_the_plain_implementation(case):
    g = np.random.default_rng(case)
    t, h, w = int(g.integers(1, 6)), int(g.integers(16, 90)), int(g.integers(16, 90))
    distinct = g.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    index = g.integers(0, t, int(g.integers(1, 12)))  # repeats, any order
    if case % 3:
        index = np.sort(index)  # as the dataset passes it
    crop = int(g.integers(8, 80))
    scale, ratio = ((1.0, 1.0), (w / h, w / h)) if case % 5 == 0 else ((0.3, 1.0), (0.75, 1.35))
    if case % 5 == 0:
        crop = min(h, w)  # whole-frame crop; when square and equal to `crop` the resize is skipped
    flip = case % 4 != 1
    ra, rb = np.random.default_rng([case, 1]), np.random.default_rng([case, 1])
    out = train_transform(distinct, crop, scale, ratio, flip, ra, index)
    ref = reference_train_transform(distinct[index], crop, scale, ratio, flip, rb)
    assert out.shape == ref.shape == (3, len(index), crop, crop) and out.is_contiguous()
    assert torch.equal(out, ref)
    assert ra.random() == rb.random()  # the same number of draws: later draws of the sample are unchanged
    full = train_transform(distinct, crop, scale, ratio, flip, np.random.default_rng([case, 1]))
    assert torch.equal(full, reference_train_transform(distinct, crop, scale, ratio, flip, np.random.default_rng([case, 1])))


@pytest.mark.parametrize("h,w,views", [(40, 80, 1), (40, 80, 3), (90, 50, 2), (32, 32, 1)])
def test_eval_views_are_bit_identical_to_the_plain_implementation_with_an_index(h, w, views):
    distinct = np.random.default_rng(h + w).integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    index = np.array([0, 1, 1, 2, 2, 2])
    ref = reference_eval_views(distinct[index], 32, views)
    for got in (eval_views(distinct, 32, views, index), eval_views(distinct[index], 32, views)):
        assert len(got) == views
        for g, r in zip(got, ref, strict=True):
            assert g.shape == (3, 6, 32, 32) and g.is_contiguous() and torch.equal(g, r)


def test_to_ctwh_layout_and_gather():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.int32).view(2, 4, 5, 3).permute(0, 3, 1, 2)  # (T, C, H, W) channels-last
    y = to_ctwh(x)
    assert y.shape == (3, 2, 4, 5) and y.is_contiguous() and torch.equal(y, x.permute(1, 0, 2, 3))
    z = to_ctwh(x, np.array([1, 1, 0]))
    assert z.is_contiguous() and torch.equal(z, torch.stack([x[1], x[1], x[0]], 1))
