"""`distributed.strategy: fsdp`: 2 processes (torchrun, gloo, CPU) with per-block sharded models reproduce one
process at the same global batch, and checkpoints move between FSDP and one process in both directions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.test_pretrain import _cache, _free_port  # noqa: F401  (_cache: the autouse synth-cache fixture)
from vjepa_cli.config._load import dump_yaml, load_recipe
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import checkpoint_name, find_latest, load_checkpoint, write_latest
from vjepa_cli.train.pretrain import run_pretrain

# The tiny recipe of tests/test_pretrain.py (32px, 4 frames, token grid 2 x 2 x 2), without stochastic depth
# (each rank draws its own), with gradient accumulation, 4 steps and a checkpoint at step 2.
TINY = [
    "model.embed_dim=48", "model.depth=2", "model.num_heads=3", "model.num_frames=4", "model.img_size=32",
    "model.pred_embed_dim=24", "model.pred_depth=1", "model.pred_num_heads=2", "model.pred_num_mask_tokens=2",
    "model.drop_path_rate=0.0", "mask.kind=multiblock",
    "data.synth={task: motion, videos: 8, frames: 8, size: 32, seed: 0}", "data.frames_per_clip=4",
    "data.frame_step=2", "data.crop_size=32", "data.num_workers=0",
    "batch_size=2", "grad_accum=2", "steps=4", "log_every=1", "checkpoint_every=2", "keep_last=3",
    "optim.warmup_steps=2", "optim.lr=1e-3", "distributed.strategy=fsdp",
]


def _torchrun(recipe: Path, out: Path, *args: str) -> dict:
    """Two processes on CPU (gloo), 1 clip x 2 micro-batches each: global batch 4, as one process at 2 x 2."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "vjepa_cli", "pretrain",
           str(recipe), "-o", str(out), "--set", "batch_size=1", "--json", *args]
    p = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "x 2 (fsdp)" in " ".join(p.stderr.split()), p.stderr[-2000:]  # the start-up line names the strategy
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ckpt(out: Path, step: int) -> tuple[dict[str, torch.Tensor], dict]:
    return load_checkpoint(out / "checkpoints" / checkpoint_name(step))


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    keys = [k for k in a if not k.startswith("rng.")]
    assert keys == [k for k in b if not k.startswith("rng.")]
    for k in keys:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def _seed_run(src: Path, step: int, dst: Path) -> None:
    """A run folder holding only `src`'s checkpoint at `step`, as `latest`."""
    (dst / "checkpoints").mkdir(parents=True)
    name = checkpoint_name(step)
    shutil.copy(src / "checkpoints" / name, dst / "checkpoints" / name)
    write_latest(dst / "checkpoints", dst / "checkpoints" / name)


def test_fsdp_matches_one_process_and_checkpoints_move_both_ways(tmp_path):
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not found")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_yaml(load_recipe(PretrainConfig, "tiny-cpu", TINY)))
    cfg = load_recipe(PretrainConfig, recipe)

    # Reference: one process (fsdp with one process trains unsharded), batch 2 x accum 2.
    seen = {}
    one = run_pretrain(cfg, tmp_path / "one", on_start=seen.update)
    assert one.global_batch == 4 and one.world_size == 1 and seen["strategy"] == "single process"

    # 1. FSDP over 2 processes, with activation checkpointing on (it must not change the numbers): the same
    #    losses, the same final weights, optimizer state and EMA target encoder, in full (unsharded) tensors.
    info = _torchrun(recipe, tmp_path / "fsdp", "--set", "model.checkpointing=true")
    assert info["world_size"] == 2 and info["global_batch"] == 4 and info["step"] == 4
    for step in (2, 4):
        a, _ = _ckpt(tmp_path / "one", step)
        b, meta = _ckpt(tmp_path / "fsdp", step)
        assert meta["strategy"] == "fsdp" and meta["world_size"] == 2
        assert b["encoder.blocks.0.attn.qkv.weight"].shape == (144, 48)  # whole, not a shard
        assert any(k.startswith("optimizer.") and k.endswith(".exp_avg") for k in b)
        _close(a, b)
    _close(load_file(str(tmp_path / "one" / "model.safetensors")),
           load_file(str(tmp_path / "fsdp" / "model.safetensors")))
    from vjepa_cli import load_model

    assert load_model(tmp_path / "fsdp" / "model.safetensors").encoder is not None

    # 2. FSDP checkpoint (step 2) -> resumed by one process.
    _seed_run(tmp_path / "fsdp", 2, tmp_path / "to_one")
    rest = run_pretrain(cfg, tmp_path / "to_one", resume=True)
    assert rest.start_step == 2 and rest.step == 4
    _close(_ckpt(tmp_path / "one", 4)[0], _ckpt(tmp_path / "to_one", 4)[0])

    # 3. One-process checkpoint (step 2) -> resumed by FSDP over 2 processes: full tensors go into the shards.
    #    Here gathered weights stay until backward (the target encoder, with no backward, is resharded by hand).
    _seed_run(tmp_path / "one", 2, tmp_path / "to_fsdp")
    info = _torchrun(recipe, tmp_path / "to_fsdp", "--resume", "--set", "distributed.reshard_after_forward=false")
    assert info["start_step"] == 2 and info["step"] == 4
    _close(_ckpt(tmp_path / "one", 4)[0], _ckpt(tmp_path / "to_fsdp", 4)[0])
    _close(load_file(str(tmp_path / "one" / "model.safetensors")),
           load_file(str(tmp_path / "to_fsdp" / "model.safetensors")))
    assert find_latest(tmp_path / "to_fsdp" / "checkpoints").name == checkpoint_name(4)


def test_fsdp_recipe_checks():
    assert load_recipe(PretrainConfig, "tiny-cpu").distributed.strategy == "ddp"  # the default
    with pytest.raises((ValueError, VjepaError), match="fp16"):
        load_recipe(PretrainConfig, "tiny-cpu", ["distributed.strategy=fsdp", "dtype=fp16"])
    with pytest.raises((ValueError, VjepaError)):
        load_recipe(PretrainConfig, "tiny-cpu", ["distributed.strategy=zero3"])
