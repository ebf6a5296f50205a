"""Synthetic videos: deterministic files, labels recoverable from pixels by trivial oracles, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _data_helpers import motion_oracle, shapes_oracle, shared_synth

from vjepa_cli.data.manifest import read_labels, read_manifest
from vjepa_cli.data.media import read_frames
from vjepa_cli.data.synth import generate_synth


def _all_rows(res):
    return read_manifest(res.train_manifest) + read_manifest(res.val_manifest)


def _frame_diff(a, b, frames: int) -> float:
    """Mean absolute difference of the decoded frames of two videos (0-255 scale)."""
    fa = read_frames(a, list(range(frames))).astype(np.int16)
    fb = read_frames(b, list(range(frames))).astype(np.int16)
    return float(np.abs(fa - fb).mean())


def test_same_seed_gives_identical_videos_and_files(tmp_path):
    a = generate_synth("physics", tmp_path / "a", n=4, frames=8, size=32, impossible=True)
    b = generate_synth("physics", tmp_path / "b", n=4, frames=8, size=32, impossible=True)
    c = generate_synth("physics", tmp_path / "c", n=4, frames=8, size=32, impossible=True, seed=1)
    for name in ["train.csv", "val.csv", "labels.json", "synth.json", "videos/000000.mp4", "videos/000003.mp4"]:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
    assert _frame_diff(a.out_dir / "videos/000000.mp4", c.out_dir / "videos/000000.mp4", 8) > 5.0


def test_motion_labels_need_time_and_are_recoverable(tmp_path_factory):
    res = shared_synth(tmp_path_factory)
    rows = _all_rows(res)
    assert len(rows) == 24 and res.num_val == 5 and len(res.class_names) == 16
    assert read_labels(res.labels_path)["0deg-speed1"] == 0
    hits = []
    for r in rows:
        frames = read_frames(r.path, range(16))
        assert frames.shape == (16, 64, 64, 3)
        hits.append(motion_oracle(frames, 8, 2) == r.label)
    assert np.mean(hits) >= 0.9  # phase correlation finds the labelled velocity
    # a single frame says nothing: first frames of different classes come from the same distribution,
    # and the objects are really moving (frames change)
    f = read_frames(rows[0].path, [0, 8])
    assert np.abs(f[0].astype(int) - f[1]).mean() > 5


def test_shapes_labels_from_one_frame(tmp_path_factory):
    res = shared_synth(tmp_path_factory, task="shapes", frames=4, n=24)
    rows = _all_rows(res)
    hits = [shapes_oracle(read_frames(r.path, [2])[0]) == r.label for r in rows]
    assert np.mean(hits) >= 0.9 and len(res.class_names) == 12


def test_physics_impossible_pairs_diverge_only_after_the_event(tmp_path):
    res = generate_synth("physics", tmp_path / "p", n=12, frames=16, size=64, impossible=True, val_fraction=0.34)
    meta = json.loads((res.out_dir / "synth.json").read_text())["videos"]
    rows = _all_rows(res)
    assert res.num_val == 4 and [r.label for r in rows] == [0, 1] * 6
    events = set()
    for p in range(6):
        possible, impossible = (read_frames(rows[2 * p + k].path, range(16)).astype(int) for k in (0, 1))
        m = meta[2 * p + 1]
        assert m["pair"] == p and meta[2 * p]["event"] is None
        e = m["event_frame"]
        events.add(m["event"])
        changed = (np.abs(possible - impossible).max(axis=3) > 40).sum(axis=(1, 2))  # pixels, per frame
        assert changed[:e].max() <= 8  # same initial conditions and dynamics before the event (codec noise aside)
        assert changed[e] >= 10  # something impossible is visible from the event frame on
    assert len(events) >= 2


def test_physics_plain_label_is_ball_count(tmp_path):
    res = generate_synth("physics", tmp_path / "q", n=3, frames=4, size=32, val_fraction=0.0)
    assert [r.label for r in read_manifest(res.train_manifest)] == [0, 1, 2]
    assert res.class_names == ["1-ball", "2-balls", "3-balls"]
    assert read_manifest(res.train_manifest)[0].num_frames == 4


def test_synth_cli(run_cli, tmp_path):
    r = run_cli("synth", tmp_path / "s", "--task", "shapes", "--videos", "4", "--frames", "4", "--size", "32",
                "--json")
    assert r.code == 0, r
    out = json.loads(r.out)
    assert out["num_train"] + out["num_val"] == 4 and out["num_classes"] == 12
    bad = run_cli("synth", tmp_path / "t", "--task", "colours")
    assert bad.code == 2 and "'colours' is not one of" in bad.err and "Traceback" not in bad.err  # a choice
    bad = run_cli("synth", tmp_path / "u", "--size", "33")
    assert bad.code == 1 and "size" in bad.err and len(bad.err.strip().splitlines()) <= 2
    odd = run_cli("synth", tmp_path / "v", "--task", "physics", "--impossible", "--videos", "3")
    assert odd.code == 1 and "even" in odd.err


def test_synth_refuses_to_mix_settings_in_one_folder(run_cli, tmp_path):
    assert run_cli("synth", tmp_path / "s", "--videos", "2", "--frames", "4", "--size", "32").code == 0
    r = run_cli("synth", tmp_path / "s", "--videos", "2", "--frames", "5", "--size", "32")
    assert r.code == 1 and "other settings" in r.err


@pytest.mark.parametrize("task", ["motion", "shapes", "physics"])
def test_workers_give_the_same_files(tmp_path, task):
    a = generate_synth(task, tmp_path / "a", n=4, frames=4, size=32, workers=2)
    b = generate_synth(task, tmp_path / "b", n=4, frames=4, size=32, workers=1)
    for i in range(4):
        assert (a.out_dir / f"videos/{i:06d}.mp4").read_bytes() == (b.out_dir / f"videos/{i:06d}.mp4").read_bytes()


def test_synth_cli_out_dir_is_a_file(run_cli, tmp_path):
    (tmp_path / "f").write_text("x")
    r = run_cli("synth", tmp_path / "f", "--videos", "2", "--frames", "2", "--size", "16")
    assert r.code == 1 and "not a folder" in r.err


def _physics_pair(seed: int, event: str, size: int = 64, frames: int = 16):
    """A matched possible / impossible pair rendered in memory (no codec), and the event frame."""
    from vjepa_cli.data import synth_scenes as sc

    videos = []
    for ev in (None, event):
        rng = np.random.default_rng(seed)  # the same draws for both videos, as `vjepa synth --impossible`
        bg = sc.physics_background(rng, size)
        tracks, radii, colours, vis, used, e = sc.physics_tracks(rng, size, frames, 2, ev)
        videos.append(sc.render_physics(size, bg, tracks, radii, colours, vis).astype(np.int16))
    return videos[0], videos[1], used, e


def test_physics_events_are_token_sized_on_a_flat_floor():
    """Surprise of a patch-16 model at 64 px can only see an event that changes about a patch: the pixels a
    vanish / teleport changes at its frame must average >= 100 (0.4 of a 16 x 16 patch; the old 3.5-5 px
    balls changed ~60), and nothing but the balls moves or varies on the floor (no texture to predict)."""
    changed = {"vanish": [], "teleport": []}
    for seed in range(16):
        for event in changed:
            possible, impossible, used, e = _physics_pair(seed, event)
            if used == event:
                changed[event].append(int((np.abs(possible[e] - impossible[e]).max(axis=2) > 40).sum()))
                assert (np.abs(possible[:e] - impossible[:e]).max() == 0)  # identical before the event
    for event, px in changed.items():
        assert len(px) >= 8 and np.mean(px) >= 100, (event, px)
    floor = possible[0, 8:56, 4:12]  # left strip of the box, between the walls and the bar
    still = (np.abs(possible - possible[:1]).max(axis=(0, 3)) == 0)[8:56, 4:12]  # pixels no ball crossed
    assert still.any() and len(np.unique(floor[still].reshape(-1, 3), axis=0)) == 1  # one flat colour


def test_encoding_does_not_depend_on_heap_garbage(tmp_path):
    """x264's mbtree read uninitialised memory on tiny frames: this 32-px motion clip, encoded after the heap
    was filled with garbage, came out with 4-5 different byte strings in 20 tries. Now every try is identical."""
    import ctypes
    import ctypes.util

    from vjepa_cli.config.data import SynthSpec
    from vjepa_cli.data.media import write_video
    from vjepa_cli.data.synth import _render

    name = ctypes.util.find_library("c")
    if name is None:
        pytest.skip("no C library to allocate from")
    libc = ctypes.CDLL(name)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    frames = _render(SynthSpec(task="motion", videos=4, frames=16, size=32), 1)[0]
    rng = np.random.default_rng(0)
    files = set()
    for k in range(12):
        blocks = []
        for size in rng.integers(16, 1 << 20, 300):  # dirty the heap: malloc, fill with a byte, free
            p = libc.malloc(int(size))
            ctypes.memset(p, int(rng.integers(1, 255)), int(size))
            blocks.append(p)
        for p in blocks:
            libc.free(p)
        files.add(write_video(tmp_path / f"{k}.mp4", frames, 8, crf=18, keyint=8).read_bytes())
    assert len(files) == 1
