"""Two `vjepa extract` processes on the same videos and the same output folder, at the same time: both succeed,
and every output is one complete, valid features file (a process may skip a video the other has written).

Each write goes to a temporary file of its own (pid + random name, created exclusively) renamed into place, so
the two never share a half-written file; the last rename wins, and both wrote the same features.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _eval_helpers import save_tiny_model, write_index_video

from vjepa_cli.io.tensors import load_tensors, read_metadata

VIDEOS = 6


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["default", "overwrite"])
def test_two_extract_processes_on_one_output_folder(tmp_path, mode):
    """default: whichever process finds a video's output absent computes it, the other may skip it (which one
    does what depends on timing). --overwrite: both write every file, so renames onto the same targets really
    do cross, every time."""
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(VIDEOS):
        write_index_video(vids / f"v{i}.mp4", 20 + 3 * i)
    model = save_tiny_model(tmp_path / "model.safetensors")
    out = tmp_path / "features"
    cmd = [sys.executable, "-m", "vjepa_cli", "extract", str(vids), "-o", str(out), "--model", str(model),
           "--frames", "4", "--stride", "1", "--json", *(["--overwrite"] if mode == "overwrite" else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]  # both started before either can finish: they race over every video
    results = [p.communicate(timeout=200) for p in procs]

    statuses: dict[str, list[str]] = {}
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0 and "Traceback" not in stderr, stderr
        lines = [json.loads(line) for line in stdout.splitlines()]
        assert len(lines) == VIDEOS, stdout  # one result per video, in each process
        for r in lines:
            assert r["status"] in ("ok", "skipped"), r
            statuses.setdefault(os.path.basename(r["path"]), []).append(r["status"])
    assert all("ok" in s for s in statuses.values()), statuses  # each video was written by at least one
    if mode == "overwrite":
        assert all(s == ["ok", "ok"] for s in statuses.values()), statuses

    assert sorted(p.name for p in out.iterdir()) == [f"v{i}.safetensors" for i in range(VIDEOS)]  # no temporaries
    ids = set()
    for i in range(VIDEOS):
        t, meta = load_tensors(out / f"v{i}.safetensors")
        assert t["features"].ndim == 2 and t["features"].shape[0] == int(meta["windows"]) >= 1
        assert t["timestamps"].shape == (t["features"].shape[0], 2) and bool(torch.isfinite(t["features"]).all())
        ids.add(read_metadata(out / f"v{i}.safetensors")["settings_id"])
    assert len(ids) == 1

