"""`vjepa extract -j N`: the videos shared among processes by size, the same files as one process, failures
reported per video (a bad video, or a process that cannot load the model), and no model file no processes."""

from __future__ import annotations

import json
import os

import pytest
import torch
from _eval_helpers import save_tiny_model, write_index_video

import vjepa_cli
from vjepa_cli.config.extract import ExtractConfig, WindowConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.extract import run_extract
from vjepa_cli.infer.extract_jobs import shares
from vjepa_cli.infer.inputs import VideoJob
from vjepa_cli.io.tensors import load_tensors


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("jobs")
    vids = d / "vids"
    vids.mkdir()
    for name, n in (("a", 30), ("b", 41), ("c", 12), ("d", 20)):
        write_index_video(vids / f"{name}.mp4", n)
    (vids / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return d, vids, save_tiny_model(d / "model.safetensors")


def test_shares_balance_bytes_largest_first_and_keep_input_order(tmp_path):
    sizes = [50, 10, 40, 30, 20, 5]
    jobs = []
    for i, s in enumerate(sizes):
        (tmp_path / f"{i}.bin").write_bytes(b"x" * s)
        jobs.append(VideoJob(i, tmp_path / f"{i}.bin", tmp_path / f"{i}.out"))
    jobs.append(VideoJob(6, tmp_path / "missing.mp4", tmp_path / "m.out"))  # counted as empty
    parts = shares(jobs, 2)
    # largest first to the lighter share: 50 -> A, 40 -> B, 30 -> B, 20 -> A, 10 -> A, 5 -> B, missing -> A/B
    loads = sorted(sum(sizes[j.index] for j in p if j.index < 6) for p in parts)
    assert loads == [75, 80]
    assert all([j.index for j in p] == sorted(j.index for j in p) for p in parts)  # input order within a share
    assert sorted(j.index for p in parts for j in p) == list(range(7))  # every job exactly once
    assert len(shares(jobs[:1], 4)) == 1  # no empty shares (no idle processes)


def test_two_processes_write_the_files_one_process_writes(media, run_cli, tmp_path):
    d, vids, model = media
    args = ["--model", model, "--frames", "4", "--frame-step", "2", "--json"]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run_cli("extract", vids, "-o", one, *args)
    r2 = run_cli("extract", vids, "-o", two, *args, "-j", "2")
    assert r1.code == 1 and r2.code == 1  # the broken video fails in both
    rows1 = {os.path.basename(x["path"]): x for x in map(json.loads, r1.out.splitlines())}
    rows2 = {os.path.basename(x["path"]): x for x in map(json.loads, r2.out.splitlines())}
    assert rows1.keys() == rows2.keys() == {"a.mp4", "b.mp4", "c.mp4", "d.mp4", "broken.mp4"}
    assert rows2["broken.mp4"]["status"] == "failed" and rows2["broken.mp4"]["error"] == rows1["broken.mp4"]["error"]
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())  # nothing partial
    for name in ("a", "b", "c", "d"):
        assert rows2[f"{name}.mp4"]["status"] == "ok"
        t1, m1 = load_tensors(one / f"{name}.safetensors")
        t2, m2 = load_tensors(two / f"{name}.safetensors")
        torch.testing.assert_close(t2["features"], t1["features"], atol=1e-6, rtol=1e-6)
        assert torch.equal(t2["timestamps"], t1["timestamps"]) and m2["settings_id"] == m1["settings_id"]
    assert "4 extracted" in r2.err and "1 failed" in r2.err
    r = run_cli("extract", vids, "-o", two, *args, "-j", "2")  # a rerun skips what both processes wrote
    assert sum(json.loads(x)["status"] == "skipped" for x in r.out.splitlines()) == 4


def test_a_process_that_cannot_load_the_model_fails_its_videos_with_the_reason(media, tmp_path):
    """This process extracts its share with the model it holds; a started one that cannot load the file fails
    its own videos, each with the loader's one-line reason, and writes nothing."""
    d, vids, model = media
    loaded = vjepa_cli.load_model(model, device=torch.device("cpu"))
    not_a_model = tmp_path / "notes.safetensors"
    not_a_model.write_text("not a model")
    cfg = ExtractConfig(window=WindowConfig(frames=4), jobs=2)
    res = run_extract([vids / "a.mp4", vids / "b.mp4"], tmp_path / "o", cfg, model_path=not_a_model, model=loaded)
    by = {os.path.basename(v.path): v for v in res.videos}
    assert by["b.mp4"].status == "ok"  # the larger file: this process's share
    assert by["a.mp4"].status == "failed" and "notes.safetensors" in by["a.mp4"].error
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["b.safetensors"]


def test_processes_need_the_model_as_a_file(media, tmp_path):
    d, vids, model = media
    loaded = vjepa_cli.load_model(model, device=torch.device("cpu"))
    with pytest.raises(VjepaError, match="needs the model as a file"):
        run_extract([vids / "a.mp4", vids / "b.mp4"], tmp_path / "o", ExtractConfig(window=WindowConfig(frames=4), jobs=2),
                    model=loaded)
    res = run_extract([vids / "a.mp4"], tmp_path / "o1", ExtractConfig(window=WindowConfig(frames=4), jobs=2),
                      model=loaded)  # one video: nothing to share, no process started
    assert [v.status for v in res.videos] == ["ok"]
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        ExtractConfig(jobs=0)
