"""Video readers (decord and PyAV agree), probing, broken files, streaming windows."""

from __future__ import annotations

import numpy as np
import pytest
from _data_helpers import shared_synth, write_corrupt_files

from vjepa_cli.data.encode import write_video
from vjepa_cli.data.video import VideoReadError, open_video, probe_video, read_frames
from vjepa_cli.data.windows import iter_windows
from vjepa_cli.errors import VjepaError


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    """48 frames of 64 x 48 noise moving one pixel a frame, 8 fps, keyframe every 8 frames."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 112, 3), dtype=np.uint8)
    frames = np.stack([base[:, t:t + 64] for t in range(48)])  # (48, 48, 64, 3)
    path = tmp_path_factory.mktemp("video") / "noise.mp4"
    write_video(path, frames, fps=8, keyint=8)
    return path


def test_probe(clip_file):
    info = probe_video(clip_file)
    assert (info.num_frames, info.fps, info.width, info.height) == (48, 8.0, 64, 48)
    assert info.duration == 6.0
    assert probe_video(clip_file, backend="pyav") == info


@pytest.mark.parametrize("indices", [[0, 1, 2], [47, 3, 3, 20], [30, 31, 40, 47]])
def test_decord_and_pyav_give_the_same_pixels(clip_file, indices):
    a = read_frames(clip_file, indices, backend="decord")
    b = read_frames(clip_file, indices, backend="pyav")
    assert a.shape == (len(indices), 48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    # frames really are the requested ones: consecutive frames differ, repeats are equal
    if indices[1] == indices[2]:
        np.testing.assert_array_equal(a[1], a[2])


def test_broken_files_raise_short_reasons(tmp_path, clip_file):
    files = write_corrupt_files(tmp_path, clip_file)
    reasons = {}
    for kind, path in files.items():
        for backend in ("decord", "pyav", "auto"):
            with pytest.raises(VideoReadError) as e:
                r = open_video(path, backend)
                r.get_batch(range(r.info.num_frames))
            reasons[kind, backend] = e.value.reason
    assert reasons["missing", "auto"] == "file not found"
    assert reasons["empty", "decord"] == "empty file"
    assert "cannot" in reasons["garbage", "pyav"] and "cannot" in reasons["truncated", "auto"]
    with pytest.raises(VjepaError, match="cannot read video"):
        probe_video(files["truncated_faststart"])


def test_iter_windows_streams_the_right_frames(clip_file):
    ref = read_frames(clip_file, range(48), backend="decord")
    for backend in ("auto", "decord"):
        wins = list(iter_windows(clip_file, frames=4, frame_step=2, stride=8, backend=backend))
        starts = [0, 8, 16, 24, 32, 40, 41]  # span 7, stride 8, plus the tail window ending at frame 47
        assert len(wins) == len(starts)
        for (clip, t0, t1), s in zip(wins, starts, strict=True):
            idx = [s, s + 2, s + 4, s + 6]
            np.testing.assert_array_equal(clip, ref[idx])
            assert (t0, t1) == (s / 8, (s + 7) / 8)


def test_iter_windows_short_video_is_padded(clip_file):
    (clip, t0, t1), = list(iter_windows(clip_file, frames=16, fps=2))  # step 4: span 61 > 48 frames
    ref = read_frames(clip_file, [min(4 * k, 47) for k in range(16)])
    np.testing.assert_array_equal(clip, ref)
    assert (t0, t1) == (0.0, 6.0)


def test_iter_windows_on_synth_and_overlap(tmp_path_factory):
    res = shared_synth(tmp_path_factory)
    path = res.out_dir / "videos" / "000000.mp4"
    wins = list(iter_windows(path, frames=8, frame_step=1, stride=4))
    assert [w[1] for w in wins] == [0.0, 0.5, 1.0]  # 16 frames at 8 fps
    np.testing.assert_array_equal(wins[0][0][4:], wins[1][0][:4])  # overlapping frames identical


def test_iter_windows_errors(tmp_path):
    with pytest.raises(VjepaError, match="file not found"):
        list(iter_windows(tmp_path / "none.mp4", frames=4))
