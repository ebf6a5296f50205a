"""`vjepa pretrain`: the CLI on synth data, exact resume, signals, faults, atomic checkpoints, 2-process DDP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests._train_helpers import fill_disk_at, folder_snapshot
from vjepa_cli.config._load import load_recipe
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import find_latest, load_checkpoint, save_checkpoint, write_latest
from vjepa_cli.train.metrics import read_metrics
from vjepa_cli.train.pretrain import run_pretrain

# A very small model on very small synth videos: 32px, 4 frames -> token grid 2 x 2 x 2.
TINY = [
    "model.embed_dim=48", "model.depth=2", "model.num_heads=3", "model.num_frames=4", "model.img_size=32",
    "model.pred_embed_dim=24", "model.pred_depth=1", "model.pred_num_heads=2", "model.pred_num_mask_tokens=2",
    "model.drop_path_rate=0.1",
    "data.synth={task: motion, videos: 8, frames: 8, size: 32, seed: 0}", "data.frames_per_clip=4",
    "data.frame_step=2", "data.crop_size=32", "data.num_workers=0",
    "batch_size=4", "steps=6", "log_every=1", "checkpoint_every=2", "keep_last=2", "optim.warmup_steps=2",
    "optim.lr=1e-3",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path_factory.getbasetemp() / "synth-cache"))
    # Ops on these tiny tensors gain nothing from a second thread, and on a busy machine the thread barrier of
    # every op costs far more than the op itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(*extra: str) -> PretrainConfig:
    return load_recipe(PretrainConfig, "tiny-cpu", [*TINY, *extra])


def _final_tensors(out: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(find_latest(out / "checkpoints"))
    return tensors


def test_cli_tiny_run_stop_and_resume(run_cli, tmp_path):
    out = tmp_path / "run"
    sets = [a for s in TINY for a in ("--set", s)]
    r = run_cli("pretrain", "tiny-cpu", *sets, "-o", out, "--stop-at", "3", "--json")
    assert r.code == 0, r
    info = json.loads(r.out.strip().splitlines()[-1])
    assert info["step"] == 3 and info["interrupted"] and info["model"] is None
    assert "--resume" in info["resume_command"]
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "latest").is_file()
    # Without --resume an existing run is refused.
    r = run_cli("pretrain", "tiny-cpu", *sets, "-o", out)
    assert r.code == 1 and "--resume" in r.err
    r = run_cli("pretrain", "tiny-cpu", *sets, "-o", out, "--resume")
    assert r.code == 0, r
    assert "step 6/6" in r.out and "model:" in r.out
    recs = read_metrics(out / "metrics.jsonl")
    assert [x["step"] for x in recs] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "lr", "wd", "ema", "grad_norm", "clips_per_s", "data_wait", "target_std", "target_erank",
                "bad_videos"):
        assert key in recs[-1]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step_*.safetensors"))
    assert ckpts == ["step_00000004.safetensors", "step_00000006.safetensors"]  # keep_last 2
    from vjepa_cli import load_model

    m = load_model(out / "model.safetensors")
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert m.encoder(x).shape == (1, 8, 48)
    # The exported encoder is the EMA target encoder of the last checkpoint.
    t = _final_tensors(out)
    assert torch.equal(m.encoder.state_dict()["blocks.0.attn.qkv.weight"], t["target_encoder.blocks.0.attn.qkv.weight"])


def test_resume_is_bit_exact(tmp_path):
    cfg = tiny("mask.kind=mixed", "model.pred_num_mask_tokens=3", "optim.reg_coeff=0.1", "batch_size=2",
               "grad_accum=2")
    full = run_pretrain(cfg, tmp_path / "full")
    assert not full.interrupted and full.step == 6

    # Interrupted by SIGINT after step 3 (finishes the step, checkpoints), then resumed.
    def on_step(info):
        if info.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job (`cmd &`)
    part = run_pretrain(cfg, tmp_path / "part", on_step=on_step)
    assert part.interrupted and part.step == 3 and part.checkpoint.name == "step_00000003.safetensors"
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    rest = run_pretrain(cfg, tmp_path / "part", resume=True)
    assert rest.start_step == 3 and rest.step == 6
    a, b = _final_tensors(tmp_path / "full"), _final_tensors(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        if not k.startswith("rng."):
            assert torch.equal(a[k], b[k]), k
    la = [r["loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_metrics(tmp_path / "part" / "metrics.jsonl")]
    assert la == lb and len(la) == 6
    ma = load_file(str(tmp_path / "full" / "model.safetensors"))
    mb = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_faults(tmp_path, monkeypatch):
    cfg = tiny("steps=4", "checkpoint_every=1")
    with pytest.raises(VjepaError, match="nothing to resume"):
        run_pretrain(cfg, tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists()  # a run that fails at start leaves nothing
    run_pretrain(cfg, tmp_path / "r", stop_at=2)
    # Another architecture cannot resume this run.
    with pytest.raises(VjepaError, match="another architecture"):
        run_pretrain(tiny("steps=4", "model.depth=3"), tmp_path / "r", resume=True)
    # A non-finite loss stops before the update and leaves the last good checkpoint as latest.
    from vjepa_cli.train import jepa

    real = jepa.JepaModel.forward
    monkeypatch.setattr(jepa.JepaModel, "forward", lambda self, *a, **k: real(self, *a, **k) * float("nan"))
    with pytest.raises(VjepaError, match="loss became nan at step 3.*step_00000002"):
        run_pretrain(cfg, tmp_path / "r", resume=True)
    monkeypatch.undo()
    assert find_latest(tmp_path / "r" / "checkpoints").name == "step_00000002.safetensors"
    # TensorBoard without the package: a clear error, not an ImportError traceback.
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(VjepaError, match="tensorboard"):
            run_pretrain(tiny("tensorboard=true"), tmp_path / "tb")
    # A truncated checkpoint is a clear error.
    latest = find_latest(tmp_path / "r" / "checkpoints")
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    with pytest.raises(VjepaError, match="not a readable safetensors"):
        run_pretrain(cfg, tmp_path / "r", resume=True)


@pytest.fixture
def loader_worker_registry(monkeypatch):
    """The worker pids torch registers for its SIGCHLD check during the test, as {iterator id: pids}.

    Teardown puts the process back as it was: whatever is still registered is removed and reaped (so a failure
    here cannot fire torch's handler in a later test), and the SIGCHLD handler torch installs once per process
    is replaced by the one before the test."""
    from torch.utils.data._utils import signal_handling

    registered: dict[int, tuple[int, ...]] = {}
    real = signal_handling._set_worker_pids

    def record(key, pids):
        registered[key] = tuple(pids)
        return real(key, pids)

    monkeypatch.setattr(signal_handling, "_set_worker_pids", record)  # dataloader.py calls it through the module
    handler, installed = signal.getsignal(signal.SIGCHLD), signal_handling._SIGCHLD_handler_set
    yield registered
    for key, pids in registered.items():
        with contextlib.suppress(ValueError):
            torch._C._remove_worker_pids(key)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    signal.signal(signal.SIGCHLD, handler)
    signal_handling._SIGCHLD_handler_set = installed


def test_killed_loader_worker_is_one_clear_error(tmp_path, loader_worker_registry):
    """A DataLoader worker killed from outside (the OOM killer, kill -9) ends the run with a VjepaError naming
    the cause and the way on, not torch's RuntimeError traceback; and the run leaves no trace of that worker in
    torch's SIGCHLD check, which would otherwise raise at a random later point whenever any child exits."""
    import multiprocessing

    def kill_workers(info):
        if info.step == 3:  # after the step-2 checkpoint
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)

    with pytest.raises(VjepaError, match="data loader worker died") as e:
        run_pretrain(tiny("steps=6", "checkpoint_every=2", "data.num_workers=1"), tmp_path / "k", on_step=kill_workers)
    assert "--resume" in e.value.hint
    ckpts = tmp_path / "k" / "checkpoints"
    assert find_latest(ckpts).name == "step_00000002.safetensors"  # the way on exists
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_00000002.safetensors"]  # no stray temp file

    assert len(loader_worker_registry) == 1  # one iterator with workers was made
    (key, pids), = loader_worker_registry.items()
    with pytest.raises(ValueError, match="Cannot find worker information"):
        torch._C._remove_worker_pids(key)  # the run took its workers out of the table
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # and reaped them: no zombie left for a later waitid to find
    handler = signal.getsignal(signal.SIGCHLD)
    if callable(handler):
        handler(signal.SIGCHLD, None)  # what the next child's exit runs: nothing to report any more
    del e  # the exception's traceback holds the run's frames (and the loader) in a cycle


def test_atomic_checkpoint_write(tmp_path, monkeypatch):
    d = tmp_path / "ck"
    good = save_checkpoint(d / "step_00000001.safetensors", {"w": torch.ones(3)}, {"step": 1})
    write_latest(d, good)
    import vjepa_cli.io.tensors as T

    def broken(tensors, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(T, "save_file", broken)
    with pytest.raises(OSError):
        save_checkpoint(d / "step_00000002.safetensors", {"w": torch.zeros(3)}, {"step": 2})
    monkeypatch.undo()
    assert not (d / "step_00000002.safetensors").exists()
    assert sorted(p.name for p in d.iterdir()) == ["latest", "step_00000001.safetensors"]  # no temp files left
    tensors, meta = load_checkpoint(find_latest(d))
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.ones(3))
    with pytest.raises(VjepaError, match="not a vjepa training checkpoint"):
        from vjepa_cli.io.tensors import save_tensors

        save_tensors(d / "other.safetensors", {"w": torch.ones(1)}, {"format": "vjepa-model"})
        load_checkpoint(d / "other.safetensors")


def _sets(*extra: str) -> list[str]:
    return [a for s in [*TINY, *extra] for a in ("--set", s)]


def _broken_videos(folder: Path) -> list[str]:
    """Recipe overrides that train on a manifest whose only video cannot be read (found at the first batch)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad.mp4").write_bytes(b"not a video")
    (folder / "bad.csv").write_text(f"path,label\n{folder / 'bad.mp4'},0\n")
    return [f"data.datasets=[{folder / 'bad.csv'}]", "data.synth=null"]


def test_a_run_that_fails_at_start_leaves_nothing(run_cli, tmp_path):
    """No readable video: the run fails at its first batch and removes the folder it made (parents included);
    a later --resume finds no run."""
    out = tmp_path / "runs" / "fresh"
    sets = _sets(*_broken_videos(tmp_path / "data"))
    r = run_cli("pretrain", "tiny-cpu", *sets, "-o", out)
    assert r.code == 1 and "no readable video" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "runs").exists()
    r = run_cli("pretrain", "tiny-cpu", *sets, "-o", out, "--resume")
    assert r.code == 1 and "nothing to resume" in r.err and not (tmp_path / "runs").exists()


def test_a_resume_that_fails_at_start_leaves_the_run_as_it_was(run_cli, tmp_path):
    out = tmp_path / "run"
    run_pretrain(tiny("steps=4"), out, stop_at=2)
    with open(out / "metrics.jsonl", "a") as f:  # a record past the checkpoint, as a crash leaves one
        f.write('{"step": 3, "loss": 1.0}\n')
    before = folder_snapshot(out)
    r = run_cli("pretrain", "tiny-cpu", *_sets("steps=4", *_broken_videos(tmp_path / "data")), "-o", out, "--resume")
    assert r.code == 1 and "no readable video" in r.err
    assert folder_snapshot(out) == before  # config.yaml, metrics.jsonl, checkpoints: bytes and times alike


def test_a_second_run_on_the_folder_is_refused(run_cli, tmp_path):
    """Two processes: the first holds the folder's lock in the middle of its run; the second is refused in one
    line. Killed, the first leaves no stale lock: the next run starts."""
    out = tmp_path / "run"
    holder = (
        "import sys\n"
        "from vjepa_cli.config._load import load_recipe\n"
        "from vjepa_cli.config.train import PretrainConfig\n"
        "from vjepa_cli.train.pretrain import run_pretrain\n"
        "def hold(info):\n"
        "    print('holding', flush=True)\n"
        "    sys.stdin.readline()  # until the test is done with it\n"
        "run_pretrain(load_recipe(PretrainConfig, 'tiny-cpu', sys.argv[2:]), sys.argv[1], on_step=hold)\n"
    )
    first = subprocess.Popen([sys.executable, "-c", holder, str(out), *TINY], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert first.stdout.readline() == "holding\n"  # after its first step, lock held
        r = run_cli("pretrain", "tiny-cpu", *_sets(), "-o", out)
        errors = [line for line in r.err.splitlines() if line.startswith("error:")]
        assert r.code == 1 and len(errors) == 1, r
        assert "in use by another run" in errors[0] and f"process {first.pid}" in errors[0]
    finally:
        first.kill()
        first.wait()
    assert (out / ".vjepa.lock").exists()  # the file outlives a killed run, its lock does not
    res = run_pretrain(tiny(), out, stop_at=1)  # nothing was checkpointed: a new run may start here
    assert res.step == 1 and not (out / ".vjepa.lock").exists()


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fill_disk_at(2, monkeypatch)  # the step-4 checkpoint (checkpoint_every 2)
    r = run_cli("pretrain", "tiny-cpu", *_sets(), "-o", out)
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert r.code == 1 and len(errors) == 1 and "Traceback" not in r.err, r
    assert "no space left" in errors[0] and "step_00000004" in errors[0] and "free space" in errors[0]
    assert "step_00000002.safetensors is intact" in errors[0]
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step_00000002.safetensors"]  # no partial file
    assert load_checkpoint(find_latest(ckpts))[1]["step"] == 2
    assert not (out / "model.safetensors").exists() and not (out / ".vjepa.lock").exists()
    monkeypatch.undo()  # space freed: the run goes on from the intact checkpoint
    r = run_cli("pretrain", "tiny-cpu", *_sets(), "-o", out, "--resume")
    assert r.code == 0 and "step 6/6" in r.out, r


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU) at batch 2 per process = one process at batch 4."""
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not found")
    sets = [*TINY, "steps=3", "checkpoint_every=3", "mask.kind=multiblock", "model.drop_path_rate=0.0"]
    recipe = tmp_path / "r.yaml"
    from vjepa_cli.config._load import dump_yaml

    recipe.write_text(dump_yaml(load_recipe(PretrainConfig, "tiny-cpu", sets)))
    one = run_pretrain(load_recipe(PretrainConfig, recipe), tmp_path / "one")
    assert one.global_batch == 4
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "vjepa_cli", "pretrain", str(recipe),
           "-o", str(tmp_path / "two"), "--set", "batch_size=2", "--json"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["world_size"] == 2 and info["global_batch"] == 4
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    la = [r["loss"] for r in read_metrics(tmp_path / "one" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_metrics(tmp_path / "two" / "metrics.jsonl")]
    assert la == pytest.approx(lb, rel=1e-5)
