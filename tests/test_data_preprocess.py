"""`vjepa preprocess` on every kind of SRC, re-encoding, resumability, and CLI errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _data_helpers import write_corrupt_files

from vjepa_cli.data.manifest import read_labels, read_manifest
from vjepa_cli.data.media import probe_video, write_video
from vjepa_cli.data.preprocess import run_preprocess


@pytest.fixture(scope="module")
def vids(tmp_path_factory):
    """Three tiny videos: two classes in sub-folders, 12 frames at 10 fps, 48 x 32."""
    root = tmp_path_factory.mktemp("pre")
    rng = np.random.default_rng(0)
    paths = {}
    for name in ["cats/a.mp4", "cats/b.mp4", "dogs/c.mp4"]:
        p = root / "videos" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        write_video(p, rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8), fps=10)
        paths[name] = p
    return root, paths


def _by_name(manifest):
    return {r.path.rsplit("/", 1)[-1]: r for r in read_manifest(manifest)}


def test_folder_with_subfolder_labels_and_a_bad_file(tmp_path, vids):
    root, paths = vids
    src = tmp_path / "src"
    shutil.copytree(root / "videos", src)
    (src / "cats" / "broken.mp4").write_bytes(b"not a video at all" * 10)
    res = run_preprocess(str(src), tmp_path / "out" / "m.csv", workers=2)
    assert res.kind == "folder" and res.num_videos == 3 and len(res.failures) == 1
    assert res.failures[0][0].endswith("broken.mp4") and "cannot" in res.failures[0][1]
    rows = _by_name(res.manifest)
    assert (rows["a.mp4"].label, rows["c.mp4"].label) == (0, 1)
    assert (rows["a.mp4"].num_frames, rows["a.mp4"].fps, rows["a.mp4"].width, rows["a.mp4"].height) == (12, 10.0, 48, 32)
    assert read_labels(res.labels_path) == {"cats": 0, "dogs": 1}


def test_labels_json_is_extended_not_replaced(tmp_path, vids):
    root, _ = vids
    (tmp_path / "labels.json").write_text(json.dumps({"dogs": 0, "birds": 1}))
    res = run_preprocess(str(root / "videos"), tmp_path / "m.csv", workers=1)
    assert read_labels(res.labels_path) == {"dogs": 0, "birds": 1, "cats": 2}
    assert _by_name(res.manifest)["a.mp4"].label == 2


def test_path_list_stdin_and_official_csv(tmp_path, vids):
    root, paths = vids
    (tmp_path / "list.txt").write_text(f"{paths['cats/a.mp4']}\n../{tmp_path.name}/missing.mp4\n")
    res = run_preprocess(str(tmp_path / "list.txt"), tmp_path / "l.csv", workers=1)
    assert res.kind == "list" and res.num_videos == 1 and res.failures[0][1] == "file not found"
    res = run_preprocess("-", tmp_path / "s.csv", stdin_text=f"{paths['dogs/c.mp4']}\n", workers=1)
    assert res.kind == "list" and _by_name(res.manifest)["c.mp4"].label == -1
    (tmp_path / "off.csv").write_text(f"{paths['cats/a.mp4']} 4\n{paths['dogs/c.mp4']} 9\n")
    res = run_preprocess(str(tmp_path / "off.csv"), tmp_path / "o.csv", workers=1)
    assert res.kind == "official" and [r.label for r in read_manifest(res.manifest)] == [4, 9]


def test_ssv2_json(tmp_path, vids):
    root, paths = vids
    vdir = tmp_path / "ssv2"
    vdir.mkdir()
    shutil.copy(paths["cats/a.mp4"], vdir / "101.webm")  # the container is sniffed, not the suffix
    shutil.copy(paths["dogs/c.mp4"], vdir / "102.webm")
    (tmp_path / "labels.json").write_text(json.dumps({"Pushing something": "0", "Holding something next to something": "1"}))
    (tmp_path / "train.json").write_text(json.dumps([
        {"id": "101", "label": "pushing a cup", "template": "Pushing [something]", "placeholders": ["a cup"]},
        {"id": "102", "template": "Holding [something] next to [something]"},
    ]))
    res = run_preprocess(str(tmp_path / "train.json"), tmp_path / "out" / "train.csv", videos=vdir, workers=1)
    assert res.kind == "ssv2" and [r.label for r in read_manifest(res.manifest)] == [0, 1]
    assert read_labels(res.labels_path)["Holding something next to something"] == 1


def test_kinetics_csv(tmp_path, vids):
    root, paths = vids
    vdir = tmp_path / "k400"
    (vdir / "abseiling").mkdir(parents=True)
    shutil.copy(paths["cats/a.mp4"], vdir / "abseiling" / "yt_AAA_000010_000020.mp4")
    shutil.copy(paths["dogs/c.mp4"], vdir / "zz_BBB_000001_000011.mp4")
    (tmp_path / "k.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                    "abseiling,yt_AAA,10,20,train\nzumba,zz_BBB,1,11,train\nzumba,gone,5,15,train\n")
    res = run_preprocess(str(tmp_path / "k.csv"), tmp_path / "k_out.csv", videos=vdir, workers=1)
    assert res.kind == "kinetics" and res.num_videos == 2 and len(res.failures) == 1
    assert read_labels(res.labels_path) == {"abseiling": 0, "zumba": 1}


def test_reencode_resize_keyframes_and_resume(tmp_path, vids):
    root, _ = vids
    out = tmp_path / "small"
    res = run_preprocess(str(root / "videos"), tmp_path / "r.csv", resize_short_side=16, out_dir=out,
                         keyframe_interval=0.5, workers=2)
    assert res.reencoded == 3 and res.reused == 0
    rows = _by_name(res.manifest)
    assert (rows["a.mp4"].width, rows["a.mp4"].height, rows["a.mp4"].num_frames) == (24, 16, 12)
    assert (out / "cats" / "a.mp4").is_file() and not list(out.rglob(".*"))  # no temporary leftovers
    import av

    with av.open(str(out / "cats" / "a.mp4")) as c:
        keys = [p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size]
    assert [i for i, k in enumerate(keys) if k] == [0, 5, 10]  # every 0.5 s at 10 fps
    mtime = (out / "dogs" / "c.mp4").stat().st_mtime_ns
    (out / "cats" / "b.mp4").unlink()  # an interrupted run: one output missing
    again = run_preprocess(str(root / "videos"), tmp_path / "r.csv", resize_short_side=16, out_dir=out, workers=1)
    assert (again.reencoded, again.reused) == (1, 2)
    assert (out / "dogs" / "c.mp4").stat().st_mtime_ns == mtime
    assert probe_video(out / "cats" / "b.mp4").width == 24


def test_strict_and_cli_paths(run_cli, tmp_path, vids):
    root, paths = vids
    bad = write_corrupt_files(tmp_path / "bad", paths["cats/a.mp4"])
    (tmp_path / "list.txt").write_text(f"{paths['cats/a.mp4']}\n{bad['truncated']}\n")
    r = run_cli("preprocess", tmp_path / "list.txt", "-o", tmp_path / "m.csv", "--workers", "1")
    assert r.code == 0 and "truncated.mp4" in r.err and "1 videos" in r.out
    r = run_cli("preprocess", tmp_path / "list.txt", "-o", tmp_path / "strict.csv", "--strict", "--workers", "1")
    assert r.code == 1 and "unreadable" in r.err and not (tmp_path / "strict.csv").exists()
    r = run_cli("preprocess", tmp_path / "nope", "-o", tmp_path / "x.csv")
    assert r.code == 1 and "SRC not found" in r.err and "Traceback" not in r.err
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    r = run_cli("preprocess", tmp_path / "bad.json", "-o", tmp_path / "x.csv")
    assert r.code == 1 and "Something-Something" in r.err and len(r.err.strip().splitlines()) <= 2
    r = run_cli("preprocess", root / "videos", "-o", tmp_path / "x.csv", "--resize-short-side", "16")
    assert r.code == 1 and "--out-dir" in r.err
    r = run_cli("preprocess", root / "videos", "-o", tmp_path / "j.csv", "--json", "--workers", "1")
    assert r.code == 0 and json.loads(r.out)["videos"] == 3


def test_worker_pool_starts_fresh_interpreters_not_forks(tmp_path, vids, monkeypatch):
    """A fork of a process with running threads (pytest-timeout's watchdog, an OpenMP pool) can inherit a held
    lock and hang the pool for good (it did in CI under load): the workers must be spawned."""
    from vjepa_cli.data import preprocess

    seen = []
    real = preprocess.ProcessPoolExecutor

    def recording(*args, **kwargs):
        seen.append(kwargs["mp_context"].get_start_method() if kwargs.get("mp_context") else "default (fork)")
        return real(*args, **kwargs)

    monkeypatch.setattr(preprocess, "ProcessPoolExecutor", recording)
    root, _ = vids
    res = preprocess.run_preprocess(str(root / "videos"), tmp_path / "m.csv", workers=2)
    assert seen == ["spawn"] and res.num_videos == 3
