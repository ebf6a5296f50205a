"""The media layer: video readers (decord and PyAV agree), probing, broken files, streaming windows, the one
video writer, image read / PNG write, and quiet decoders."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from _data_helpers import shared_synth, write_corrupt_files

from vjepa_cli.data.media import (
    Crop,
    VideoReadError,
    crop_views,
    iter_windows,
    open_video,
    probe_video,
    read_frames,
    read_image,
    read_video,
    write_png,
    write_video,
)
from vjepa_cli.data.media.write import encode_png
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
    assert info.path == clip_file and info.size_bytes == clip_file.stat().st_size
    assert probe_video(clip_file, backend="pyav") == info
    for backend in ("decord", "pyav", "auto"):  # an open reader knows the same, without a second open
        r = open_video(clip_file, backend)
        assert r.info == info
        r.close()


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
    assert isinstance(VideoReadError("x.mp4", "empty file"), VjepaError)  # the CLI prints it as one line


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


def test_iter_windows_crops(clip_file):
    ref = read_frames(clip_file, range(48), backend="decord")
    crop = Crop(short=36, size=32, views=2)
    wins = list(iter_windows(clip_file, frames=4, frame_step=2, stride=8, crop=crop))
    assert len(wins) == 7 and wins[1].frames.shape == (2, 4, 32, 32, 3)  # (V, T, S, S, 3)
    np.testing.assert_array_equal(wins[1].frames, crop_views(ref[[8, 10, 12, 14]], *crop))
    assert (wins[1].start, wins[1].end) == (1.0, 15 / 8)


def test_overlapping_cropped_windows_equal_cropping_each_window(clip_file):
    """PyAV resizes each sampled frame once as it is decoded and cuts windows from the resized frames: the bytes
    must equal resizing and cropping each window's full frames (overlapping windows, several views)."""
    ref = read_frames(clip_file, range(48), backend="pyav")
    for crop in (Crop(short=40, size=32, views=1), Crop(short=36, size=32, views=3)):
        wins = list(iter_windows(clip_file, frames=6, frame_step=3, stride=2, crop=crop))
        assert len(wins) > 10  # every frame is in several windows
        for w in wins:
            first = round(w.start * 8)
            idx = [min(first + 3 * k, 47) for k in range(6)]
            np.testing.assert_array_equal(w.frames, crop_views(ref[idx], *crop))


def test_resizing_frames_one_by_one_equals_resizing_the_clip():
    from vjepa_cli.data.media.windows import cut_views, resize_short

    clip = np.random.default_rng(3).integers(0, 256, (5, 90, 161, 3), dtype=np.uint8)
    whole = resize_short(clip, 50)
    one_by_one = np.stack([resize_short(clip[i:i + 1], 50)[0] for i in range(5)])
    np.testing.assert_array_equal(whole, one_by_one)
    assert whole.shape == (5, 50, 89, 3)
    np.testing.assert_array_equal(cut_views(one_by_one, 50, 48, 2), crop_views(clip, 50, 48, 2))


def test_video_writer_lossless_and_lossy(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 15, 21, 3), dtype=np.uint8)  # odd sizes: fine for RGB H.264
    write_video(tmp_path / "v.mp4", frames, fps=10, lossless=True)
    assert np.array_equal(read_video(tmp_path / "v.mp4"), frames)
    assert probe_video(tmp_path / "v.mp4").fps == 10.0
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "w.mp4", frames, fps=10)  # yuv420p needs even sizes
    smooth = np.repeat(np.linspace(0, 255, 24, dtype=np.uint8)[None, None, :, None], 16, 1).repeat(3, 3)
    smooth = np.repeat(smooth, 5, 0)  # (5, 16, 24, 3) a grey ramp
    a = write_video(tmp_path / "a.mp4", smooth, fps=8).read_bytes()
    assert a == write_video(tmp_path / "b.mp4", smooth, fps=8).read_bytes()  # deterministic
    assert np.abs(read_video(tmp_path / "a.mp4").astype(int) - smooth).max() <= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "v.mp4"]  # atomic: no leftovers


def _stderr_lines(args: list[str], cwd) -> tuple[int, list[str]]:
    """Run `args` in a fresh interpreter; its exit code and the lines written to its file descriptor 2."""
    r = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                            "COLUMNS": "200"})
    return r.returncode, [ln for ln in r.stderr.splitlines() if ln.strip()]


def test_decoders_are_quiet_unless_verbose(tmp_path, clip_file):
    """FFmpeg's and decord's own lines reach stderr only with `vjepa -v`; by default a corrupt video gives our
    lines only (checked at the file-descriptor level, where C libraries write)."""
    from _eval_helpers import save_tiny_model

    model = save_tiny_model(tmp_path / "model.safetensors")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(clip_file.read_bytes()[: clip_file.stat().st_size // 2])  # no moov atom: cannot open
    args = ["-m", "vjepa_cli", "extract", str(bad), "-o", str(tmp_path / "f.safetensors"), "--model", str(model),
            "--frames", "4"]
    code, lines = _stderr_lines(args, tmp_path)
    assert code == 1 and lines == [
        f"failed {bad}: cannot read video {bad}: cannot open with PyAV: Invalid data found when processing input",
        "0 extracted, 0 skipped (already done), 1 failed", f"failed: {bad}"]
    code, verbose = _stderr_lines(args[:2] + ["-v"] + args[2:], tmp_path)
    assert code == 1 and any("moov atom not found" in ln for ln in verbose) and set(lines) < set(verbose)
    # decord: its bundled FFmpeg and its C++ `LOG(ERROR)` line on a failed open
    script = ("import sys; from vjepa_cli.data.media import open_video, set_verbose; set_verbose(sys.argv[2] == '1')\n"
              "try: open_video(sys.argv[1], 'decord')\nexcept Exception as e: print(e.reason)")
    assert _stderr_lines(["-c", script, str(bad), "0"], tmp_path) == (0, [])
    code, lines = _stderr_lines(["-c", script, str(bad), "1"], tmp_path)
    assert any("moov atom not found" in ln for ln in lines) and any("ERROR opening" in ln for ln in lines)


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


def test_png_round_trip_filters_and_grey(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", img)
    assert np.array_equal(read_image(tmp_path / "a.png"), img)
    (tmp_path / "f.png").write_bytes(_png_with_filters(img))
    assert np.array_equal(read_image(tmp_path / "f.png"), img)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    (tmp_path / "g.png").write_bytes(encode_png(grey))
    assert np.array_equal(read_image(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, 2))


def test_image_errors(tmp_path):
    with pytest.raises(VjepaError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "x.png").write_bytes(b"hello")
    with pytest.raises(VjepaError, match="cannot decode image"):
        read_image(tmp_path / "x.png")
    good = encode_png(np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "t.png").write_bytes(good[:40])
    with pytest.raises(VjepaError, match="cannot decode image"):  # header intact, pixels cut
        read_image(tmp_path / "t.png")
