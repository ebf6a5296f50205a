"""The training rows of `gpu_check.py`: the real pretraining step (`PretrainTrainer.train_step` of
`vjepa_cli.train.pretrainer`, built from the `vitl16` recipe) eager and under `torch.compile`, which SDPA and
AdamW kernels it runs, and the same step with the models sharded by FSDP2 on a one-process group.

The trainer is built as `run_pretrain` builds it; only its batches differ: one batch (random uint8 clips on the
device, official multi-block masks of collator step 0) is repeated, so no data loading is timed and the compiled
model sees one shape. FLOPs are analytic (`bench_train.step_flops`, i.e. bench_model's count).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import step_flops  # noqa: E402
from gpu_check_common import (  # noqa: E402
    Sizes,
    auto_batch,
    bf16_peak,
    guarded,
    median,
    peak_gib,
    reset_peak,
    row,
    sync,
)

from vjepa_cli.config._load import load_recipe  # noqa: E402
from vjepa_cli.config.train import PretrainConfig  # noqa: E402
from vjepa_cli.data.masks import MaskCollator, MaskedBatch  # noqa: E402
from vjepa_cli.io.checkpoint import StepCheckpoints  # noqa: E402
from vjepa_cli.train.jepa import build_optimizer  # noqa: E402
from vjepa_cli.train.pretrain import _accelerator  # noqa: E402
from vjepa_cli.train.pretrainer import PretrainTrainer  # noqa: E402
from vjepa_cli.train.rundir import RunDir  # noqa: E402
from vjepa_cli.train.sharding import is_sharded, shard_models  # noqa: E402
from vjepa_cli.train.trainer import StopFlag  # noqa: E402


def pretrain_config(sz: Sizes, dev: torch.device, tmp: Path, compile_: bool = False,
                    fsdp: bool = False) -> PretrainConfig:
    """The `vitl16` recipe at `sz`; the loader (built, never read) points at 2 tiny synthetic videos."""
    sets = [
        f"model.arch={sz.arch}", f"model.depth={'null' if sz.depth is None else sz.depth}",
        f"model.num_frames={sz.frames}", f"model.img_size={sz.size}", f"model.pred_depth={sz.pred_depth}",
        f"model.pred_embed_dim={sz.pred_dim}", "data.datasets=[]",
        f"data.synth={{task: motion, videos: 2, frames: {sz.frames}, size: 32, seed: 0}}",
        f"data.cache_dir={tmp / 'cache'}", f"data.frames_per_clip={sz.frames}", "data.frame_step=1",
        f"data.crop_size={sz.size}", "data.num_workers=0", f"batch_size={sz.batch}", "steps=100000",
        "log_every=100000", "checkpoint_every=100000", f"device={dev.type}",
        f"dtype={sz.dtype}", f"compile={str(compile_).lower()}",
        f"distributed.strategy={'fsdp' if fsdp else 'ddp'}",
    ]
    return load_recipe(PretrainConfig, "vitl16", sets)


@contextlib.contextmanager
def pretrain_trainer(sz: Sizes, dev: torch.device, tmp: Path, compile_: bool = False, fsdp: bool = False):
    """(config, `PretrainTrainer`) built as `run_pretrain` builds them, in a run folder under `tmp`."""
    cfg = pretrain_config(sz, dev, tmp, compile_, fsdp)
    acc, dtype = _accelerator(cfg)
    out = tmp / "run"
    with RunDir(out, main=True) as folder:
        yield cfg, PretrainTrainer(cfg, acc, dtype, folder, StepCheckpoints(out / "checkpoints", 1), "gpu_check",
                                   init=True)


def fixed_batch(cfg: PretrainConfig, sz: Sizes, dev: torch.device) -> MaskedBatch:
    """Random uint8 clips (B, 3, T, S, S) on `dev` with the official multi-block masks of collator step 0."""
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (sz.batch, 3, sz.frames, sz.size, sz.size), generator=g, dtype=torch.uint8)
    ctx, tgt = MaskCollator(cfg.mask, cfg.grid, seed=cfg.seed).masks(0, sz.batch)  # [(B, K_ctx)], [(B, K_tgt)]
    return MaskedBatch(clips.to(dev), [m.to(dev) for m in ctx], [m.to(dev) for m in tgt],
                       torch.full((sz.batch,), -1), [])


def run_steps(tr: PretrainTrainer, batch: MaskedBatch, n: int, dev: torch.device) -> tuple[list[float], float]:
    """`n` optimizer steps of the trainer on `batch` -> (seconds of each, synchronised; the last loss)."""
    tr._batches = itertools.repeat(batch)  # what `PretrainTrainer.train` sets to the loader's iterator
    times, loss, stop = [], float("nan"), StopFlag()  # not entered: no signal handlers
    for _ in range(n):
        sync(dev)
        t = time.perf_counter()
        loss = tr.train_step(stop).loss
        sync(dev)
        times.append(time.perf_counter() - t)
        tr.step += 1
    return times, loss


def card(dev: torch.device) -> tuple[str, float | None]:
    """(device name, dense bf16 peak TFLOP/s or None) of a CUDA device; ("cpu", None) on the CPU."""
    if dev.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(dev)
    return name, bf16_peak(name)[0]


def step_row(name: str, cfg: PretrainConfig, sz: Sizes, dev: torch.device, batch: MaskedBatch,
             times: list[float], peak: float, loss: float, **extra) -> dict:
    flops = step_flops(cfg, batch.context_masks, batch.target_masks, sz.batch)
    med = median(times)
    tflops = flops / med / 1e12
    device_name, tpeak = card(dev)
    mfu = None if tpeak is None else tflops / tpeak
    rate = f"{tflops:.1f} TFLOP/s" if dev.type == "cuda" else f"{tflops * 1e3:.2f} GFLOP/s"
    value = f"{sz.batch / med:.2f} clips/s, {rate}, " + (
        f"MFU {mfu:.2f} of {tpeak:.0f}" if mfu is not None else
        ("MFU n/a: unknown card, see TFLOP/s" if dev.type == "cuda" else "MFU n/a on CPU"))
    status = "ok" if mfu is None or mfu >= 0.45 else "check"  # the goal: >= 0.45
    return row(name, status, value, med, peak, batch=sz.batch, clips_per_s=sz.batch / med, tflops=tflops,
               mfu=mfu, peak_tflops=tpeak, device_name=device_name, step_times=times, tflop_per_step=flops / 1e12,
               loss=loss, dtype=sz.dtype, **extra)


def profiled_ops(tr: PretrainTrainer, batch: MaskedBatch, dev: torch.device) -> set[str]:
    """Names of the ops (and CUDA kernels) one profiled training step ran."""
    acts = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        run_steps(tr, batch, 1, dev)
    return {e.key for e in prof.key_averages()}


def sdpa_row(tr: PretrainTrainer, batch: MaskedBatch, dev: torch.device, ops: set[str]) -> dict:
    """Which SDPA backend the step's attention dispatched to, and whether it runs with only flash/efficient."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    seen = sorted({b for b in ("flash", "efficient", "cudnn", "math") for n in ops
                   if f"_scaled_dot_product_{b}_attention" in n or (b == "math" and "_attention_math" in n)})
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            run_steps(tr, batch, 1, dev)
        restricted = "ran"
    except RuntimeError as e:
        restricted = "failed: " + (str(e).strip().splitlines() or ["RuntimeError"])[0][:120]
    good = bool(seen) and set(seen) <= {"flash", "efficient"} and restricted == "ran"
    value = f"backends seen: {', '.join(seen) or 'none'}; step under sdpa_kernel(flash, efficient): {restricted}"
    kernels = sorted(n[:100] for n in ops if any(k in n.lower() for k in ("flash", "fmha", "efficient_attention")))
    return row("SDPA flash / efficient", "ok" if good else "check", value, backends=seen, restricted=restricted,
               kernels=kernels[:12])


def adamw_row(tr: PretrainTrainer, ops: set[str]) -> dict:
    """Whether the trainer's optimizer asked for fused AdamW, and whether the fused op ran in the step."""
    opt = getattr(tr.optimizer, "optimizer", tr.optimizer)  # Accelerate wraps it
    fused = bool(opt.defaults.get("fused"))
    ran = any("_fused_adamw" in n for n in ops)
    value = f"{type(opt).__name__}(fused={fused}), _fused_adamw_ in the step: {'yes' if ran else 'no'}"
    return row("fused AdamW", "ok" if fused and ran else "check", value, fused=fused, fused_op_ran=ran)


def train_rows(sz: Sizes, dev: torch.device, compile_: bool) -> list[dict]:
    """The eager step (and its SDPA / AdamW rows) or the compiled step; halves the batch on out-of-memory."""
    if sz.batch == 0:
        sz = sz.with_batch(auto_batch(torch.cuda.get_device_properties(dev).total_memory / 2**30))
    notes = []
    while True:
        oom = False
        try:
            return _train_rows(sz, dev, compile_, notes)
        except torch.OutOfMemoryError:
            if sz.batch == 1:
                raise
            oom = True
        if oom:  # outside the except block, so the failed step's tensors are freed
            notes.append(f"out of memory at batch {sz.batch}")
            sz = sz.with_batch(sz.batch // 2)
            gc.collect()
            torch.cuda.empty_cache()


def _train_rows(sz: Sizes, dev: torch.device, compile_: bool, notes: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as d, pretrain_trainer(sz, dev, Path(d), compile_) as (cfg, tr):
        tr.prepare(cfg.steps)
        batch = fixed_batch(cfg, sz, dev)
        first, _ = run_steps(tr, batch, 1, dev)  # compiles when compiling
        run_steps(tr, batch, sz.warmup - 1, dev)
        reset_peak(dev)
        times, loss = run_steps(tr, batch, sz.steps, dev)
        peak = peak_gib(dev)
        name = "train step, torch.compile" if compile_ else "train step, eager"
        masks = [[c.shape[1], t.shape[1]] for c, t in zip(batch.context_masks, batch.target_masks, strict=True)]
        rows = [step_row(name, cfg, sz, dev, batch, times, peak, loss, first_step_s=first[0], notes=notes,
                         masks=masks)]
        rows[0]["value"] += f"; batch {sz.batch}" + (f", first step (compiling) {first[0]:.0f} s" if compile_ else "")
        if notes:
            rows[0]["value"] += f" ({'; '.join(notes)})"
        if not compile_:
            def checks() -> list[dict]:
                ops = profiled_ops(tr, batch, dev)
                return [sdpa_row(tr, batch, dev, ops), adamw_row(tr, ops)]

            rows += guarded(["SDPA flash / efficient", "fused AdamW"], checks)
        return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fsdp_rows(sz: Sizes, dev: torch.device) -> list[dict]:
    """The trainer's step with its models sharded by `shard_models` over a one-process group.

    `run_pretrain` trains unsharded when it has one process (there is nothing to shard), so the trainer is
    built with `distributed.strategy: fsdp`, then its online pair and target are sharded as a multi-process
    run shards them (a fresh fused AdamW over the DTensor parameters) and its `train_step` runs the FSDP path.
    """
    import torch.distributed as dist

    if sz.batch == 0:
        sz = sz.with_batch(auto_batch(torch.cuda.get_device_properties(dev).total_memory / 2**30))
    sz = sz.with_batch(max(1, sz.batch // 2))  # a check that the path works: room for FSDP's gathered copies
    if dev.type == "cuda":
        torch.cuda.set_device(dev.index or 0)
    with tempfile.TemporaryDirectory() as d, pretrain_trainer(sz, dev, Path(d), fsdp=True) as (cfg, tr):
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}",
                                rank=0, world_size=1)
        try:
            shard_models([tr.jepa, tr.target], cfg.distributed, tr.acc.device, tr.dtype)
            tr.optimizer = build_optimizer(tr.jepa, cfg.optim, tr.acc.device)
            tr.sharded = True
            tr.prepare(cfg.steps)
            batch = fixed_batch(cfg, sz, dev)
            run_steps(tr, batch, 1, dev)
            reset_peak(dev)
            times, loss = run_steps(tr, batch, sz.fsdp_steps, dev)
            peak = peak_gib(dev)
            sharded = all(is_sharded(p) for p in tr.jepa.parameters())
            fused = bool(tr.optimizer.defaults.get("fused"))
        finally:
            dist.destroy_process_group()
    r = step_row("FSDP2, 1 process", cfg, sz, dev, batch, times, peak, loss, sharded=sharded, fused_adamw=fused)
    ok = sharded and loss == loss
    r["status"] = "ok" if ok else "failed"
    r["value"] = (f"{len(times) + 1} steps, loss {loss:.4f}, params sharded: {sharded}, fused AdamW: {fused}; "
                  + r["value"].split(", MFU")[0] + f"; batch {sz.batch}")
    return [r]
