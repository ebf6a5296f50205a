"""A full disk while writing a features file, a model file or a checkpoint: one clear line ("no space left on
device writing X; free some space or choose another -o"), the previous file as it was, no partial file.

Simulated first (ENOSPC where each write can meet it: safetensors' writer, fsync, the rename; the text writer of
`latest`), then once for real on a 1 MiB tmpfs when this machine lets the test mount one (it skips otherwise).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _eval_helpers import save_tiny_model, tiny_config, write_index_video
from safetensors import SafetensorError

import vjepa_cli.io.atomic as atomic
import vjepa_cli.io.tensors as tensors_io
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import find_latest, load_checkpoint, save_checkpoint, write_latest
from vjepa_cli.io.tensors import load_tensors, save_tensors

pytestmark = pytest.mark.usefixtures("one_thread")
ENOSPC_TEXT = "Error while serializing: I/O error: No space left on device (os error 28)"  # what safetensors says


def _fail_at(monkeypatch, where: str) -> None:
    """Make the next atomic write meet a full disk at `where`, leaving a partial temporary file behind it."""
    if where == "write":
        def save_file(tensors, path, metadata=None):
            Path(path).write_bytes(b"partial")
            raise SafetensorError(ENOSPC_TEXT)

        monkeypatch.setattr(tensors_io, "save_file", save_file)
    elif where == "fsync":
        def fsync(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(atomic.os, "fsync", fsync)
    elif where == "replace":
        def replace(src, dst):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(atomic.os, "replace", replace)
    elif where == "text":
        def write_text(self, text, encoding=None):
            Path.write_bytes(self, text.encode()[:1])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(Path, "write_text", write_text)


def _assert_refused(e: pytest.ExceptionInfo, path: Path) -> None:
    assert str(e.value) == f"no space left on device writing {path} (free some space or choose another -o)"


def _folder(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_features_file(tmp_path, monkeypatch, where):
    out = tmp_path / "f.safetensors"
    save_tensors(out, {"features": torch.ones(3, 4), "timestamps": torch.zeros(3, 2)}, {"format": "vjepa-features/1"})
    before = _folder(tmp_path)
    _fail_at(monkeypatch, where)
    with pytest.raises(VjepaError) as e:
        save_tensors(out, {"features": torch.zeros(5, 4), "timestamps": torch.zeros(5, 2)})
    monkeypatch.undo()
    _assert_refused(e, out)
    assert _folder(tmp_path) == before  # the previous file, byte for byte, and no temporary beside it


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_model_file(tmp_path, monkeypatch, where):
    from vjepa_cli.models import build_encoder
    from vjepa_cli.models.load import load_model, save_model_file

    out = save_tiny_model(tmp_path / "model.safetensors")
    before = _folder(tmp_path)
    _fail_at(monkeypatch, where)
    with pytest.raises(VjepaError) as e:
        save_model_file(out, build_encoder(tiny_config()), None, tiny_config(), {"source": "test"})
    monkeypatch.undo()
    _assert_refused(e, out)
    assert _folder(tmp_path) == before
    assert load_model(out).predictor is not None  # still the first file


@pytest.mark.parametrize("where", ["write", "fsync", "replace", "text"])
def test_checkpoint_and_latest(tmp_path, monkeypatch, where):
    d = tmp_path / "checkpoints"
    write_latest(d, save_checkpoint(d / "step_00000002.safetensors", {"w": torch.ones(3)}, {"step": 2}))
    before = _folder(d)
    _fail_at(monkeypatch, where)
    with pytest.raises(VjepaError) as e:
        if where == "text":  # the `latest` pointer is the last thing a checkpoint writes
            write_latest(d, d / "step_00000004.safetensors")
        else:
            save_checkpoint(d / "step_00000004.safetensors", {"w": torch.zeros(3)}, {"step": 4})
    monkeypatch.undo()
    _assert_refused(e, d / ("latest" if where == "text" else "step_00000004.safetensors"))
    assert _folder(d) == before
    tensors, meta = load_checkpoint(find_latest(d))
    assert meta["step"] == 2 and torch.equal(tensors["w"], torch.ones(3))


def test_pretrain_run_stops_with_one_line_at_a_full_disk(tmp_path, monkeypatch, run_cli):
    """The run's second checkpoint meets a full disk: exit 1 with the line, and the first one is still `latest`."""
    from test_pretrain import TINY

    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path / "cache"))
    real, saves = tensors_io.save_file, []

    def save_file(tensors, path, metadata=None):
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"partial")
            raise SafetensorError(ENOSPC_TEXT)
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(tensors_io, "save_file", save_file)
    out = tmp_path / "run"
    r = run_cli("pretrain", "tiny-cpu", *[a for s in [*TINY, "steps=4"] for a in ("--set", s)], "-o", out)
    ckpt = out / "checkpoints" / "step_00000004.safetensors"
    lines = r.err.strip().splitlines()  # the run's start line and log come first, the error last
    assert r.code == 1 and "Traceback" not in r.err and [ln for ln in lines if ln.startswith("error")] == [
        f"error: no space left on the device writing {ckpt}; the previous checkpoint "
        f"{out / 'checkpoints' / 'step_00000002.safetensors'} is intact (free space or move the run to a disk "
        "with room, then continue it with --resume)"] == lines[-1:], r
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step_00000002.safetensors"]
    assert load_checkpoint(find_latest(out / "checkpoints"))[1]["step"] == 2
    assert not (out / "model.safetensors").exists()


def test_extract_stops_with_one_line_at_a_full_disk(tmp_path, monkeypatch, run_cli):
    video = write_index_video(tmp_path / "v.mp4", 12)
    model = save_tiny_model(tmp_path / "model.safetensors")
    out = tmp_path / "feats"
    _fail_at(monkeypatch, "write")
    r = run_cli("extract", video, "-o", out, "--model", model, "--frames", "4")
    assert r.code == 1 and r.err.strip() == (f"error: no space left on device writing {out / 'v.safetensors'} "
                                             "(free some space or choose another -o)"), r
    assert not out.exists() or list(out.iterdir()) == []


# ---------------------------------------------------------------- a real full filesystem


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs, when this process may mount one (root in a container that allows it)."""
    mnt = tmp_path / "tiny-fs"
    mnt.mkdir()
    if shutil.which("mount") is None or sys.platform != "linux":
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _fill(mnt: Path, leave: int) -> None:
    """Fill the filesystem up to about `leave` free bytes."""
    free = shutil.disk_usage(mnt).free
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_a_real_full_tmpfs(tiny_fs, tmp_path, run_cli):
    feats = tiny_fs / "f.safetensors"
    save_tensors(feats, {"features": torch.ones(3, 4)})
    first = feats.read_bytes()
    _fill(tiny_fs, leave=16 * 1024)
    with pytest.raises(VjepaError) as e:  # 400 KB of features into 16 KB of space
        save_tensors(feats, {"features": torch.zeros(100_000, 1)})
    _assert_refused(e, feats)
    assert feats.read_bytes() == first and sorted(p.name for p in tiny_fs.iterdir()) == ["f.safetensors", "filler"]
    assert torch.equal(load_tensors(feats)[0]["features"], torch.ones(3, 4))

    video = write_index_video(tmp_path / "v.mp4", 40)  # about ten windows of tokens: some 20 KB of features
    model = save_tiny_model(tmp_path / "model.safetensors")
    (tiny_fs / "filler").unlink()
    _fill(tiny_fs, leave=4 * 1024)
    r = run_cli("extract", video, "-o", tiny_fs / "out", "--model", model, "--frames", "4", "--pool", "none")
    assert r.code == 1 and r.err.strip().startswith("error: no space left on device writing "), r
    assert not (tiny_fs / "out").exists() or list((tiny_fs / "out").iterdir()) == []
