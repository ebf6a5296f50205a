"""Frame indices against the official V-JEPA formula (transcribed independently in _data_helpers)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _data_helpers import official_clip_indices

from vjepa_cli.data.sampling import clip_indices, resolve_frame_step, window_indices, window_starts


@pytest.mark.parametrize("n,fpc,fstp,num_clips", list(itertools.product(
    [1, 7, 16, 63, 64, 65, 150, 300, 1001], [1, 8, 16], [1, 2, 4, 7], [1, 2, 3])))
def test_clip_indices_match_official(n, fpc, fstp, num_clips):
    for random_sampling, overlap in [(False, False), (True, False), (False, True)]:
        if overlap and min(fpc * fstp, n) - 1 < 1:
            continue  # the official formula clips to -1 there (a 1-frame video); ours clamps to 0
        ours_rng = np.random.default_rng(5) if random_sampling else None
        ref_rng = np.random.default_rng(5)
        ours = clip_indices(n, fpc, fstp, num_clips, ours_rng, allow_clip_overlap=overlap)
        ref = official_clip_indices(n, fpc, fstp, num_clips, random_sampling, overlap,
                                    lambda lo, hi, g=ref_rng: int(g.integers(lo, hi)))
        assert len(ours) == num_clips
        for a, b in zip(ours, ref, strict=True):
            if n >= num_clips:  # the official code indexes past short videos with num_clips > n
                np.testing.assert_array_equal(a, b)
            assert a.shape == (fpc,) and a.min() >= 0 and a.max() < n


def test_clip_spacing_and_padding():
    (idx,) = clip_indices(300, 16, 4, 1, None)
    assert idx[0] == 0 and idx[-1] == 63  # linspace(0, 64, 16) clipped to 63: steps of ~4.27
    (idx,) = clip_indices(20, 16, 4, 1, None)  # shorter than a clip: last frame repeated
    assert list(idx[:5]) == [0, 5, 10, 15, 19]
    assert (idx[5:] == 19).all()


def test_random_clip_start_varies_and_stays_in_range():
    starts = {int(clip_indices(300, 16, 4, 1, np.random.default_rng(s))[0][0]) for s in range(50)}
    assert len(starts) > 20 and min(starts) >= 0 and max(starts) <= 300 - 64


def test_resolve_frame_step_official_cases():
    assert resolve_frame_step(30, 16) == 4  # default
    assert resolve_frame_step(30, 16, frame_step=2) == 2
    assert resolve_frame_step(29.97, 16, fps=4) == 7  # ceil(29.97) // 4
    assert resolve_frame_step(25, 16, duration=3.2) == 5  # int(3.2 * 25 / 16)
    assert resolve_frame_step(8, 16, fps=30) == 1  # never 0
    with pytest.raises(ValueError):
        resolve_frame_step(30, 16, frame_step=2, fps=4)


def test_windows_cover_the_video():
    assert window_starts(100, 31, 32) == [0, 32, 64, 69]
    assert window_starts(100, 31, 32, include_tail=False) == [0, 32, 64]
    assert window_starts(10, 31, 32) == [0]
    np.testing.assert_array_equal(window_indices(0, 4, 4, 10), [0, 4, 8, 9])
