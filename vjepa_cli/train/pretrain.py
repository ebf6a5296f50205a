"""`run_pretrain`: the V-JEPA pretraining loop (Bardes et al. 2024; Assran et al. 2025, V-JEPA 2).

Accelerate places the models (one CPU, one GPU, or DDP over many processes launched by `torchrun` /
`accelerate launch`; with `distributed.strategy: fsdp` the models are sharded per block instead, see
`vjepa_cli.train.sharding`). Everything random is a function of (seed, step): weights from the seed, clips and
masks from (seed, step, index), dropout from a per-step reseed, so `--resume` continues an interrupted run exactly
(bit for bit on CPU) and N processes reproduce one process at the same global batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vjepa_cli.config._load import dump_yaml
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError, resource_error
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.io.checkpoint import (
    checkpoint_name,
    find_latest,
    list_checkpoints,
    prune_checkpoints,
    write_latest,
)

log = logging.getLogger(__name__)
_MIX = 0x9E3779B97F4A7C15


@dataclass
class StepInfo:
    """Passed to the `on_step` callback after every optimizer step."""

    step: int  # optimizer steps done
    steps: int  # total steps of the run
    loss: float
    lr: float
    clips_per_s: float


@dataclass
class PretrainResult:
    output_dir: Path
    start_step: int  # step the run started from (0, or the resumed checkpoint's)
    step: int  # optimizer steps done when it stopped
    steps: int  # steps the recipe asks for
    final_loss: float | None
    checkpoint: Path | None  # the last checkpoint written
    model_path: Path | None  # model file (target encoder + predictor) written at the end
    loss_curve: Path | None
    interrupted: bool  # stopped early by a signal or stop_at
    global_batch: int
    world_size: int
    seconds: float
    clips_per_s: float
    bad_videos: int
    warnings: list[str] = field(default_factory=list)


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the global torch RNG for one step on one rank (stochastic depth and any other global draw)."""
    return ((seed * _MIX) ^ (rank * 1_000_003 + step)) % (2**63 - 1)


def _accelerator(cfg: PretrainConfig):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise VjepaError("device: cuda was asked for but no CUDA GPU is visible", hint="set device: auto or cpu")
    cpu = cfg.device == "cpu" or not cuda
    dtype = cfg.dtype if cfg.dtype != "auto" else ("fp32" if cpu else "bf16")
    mp = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[dtype]
    unused = cfg.mask.num_masks < cfg.model.pred_num_mask_tokens  # some mask tokens get no gradient
    kwargs = [DistributedDataParallelKwargs(find_unused_parameters=unused)]
    return Accelerator(cpu=cpu, mixed_precision=mp, kwargs_handlers=kwargs), dtype


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and returns. A second SIGINT aborts."""

    def __init__(self):
        self.set, self._old = False, {}

    def _handle(self, signum, frame):
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set = True
        log.warning("%s received: finishing this step, then writing a checkpoint", signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _next_batch(it):
    """next(it), with a user error raised in a loader worker shown as its one-line message, not a traceback."""
    try:
        return next(it)
    except VjepaError as e:
        text = str(e.message)
        if "Traceback" not in text:
            raise
        last = text.strip().splitlines()[-1]
        raise VjepaError(last.split("VjepaError: ", 1)[-1]) from None


def _prepare_output(cfg: PretrainConfig, out: Path, resume: bool) -> Path | None:
    ckpt_dir = out / "checkpoints"
    latest = find_latest(ckpt_dir)
    if resume:
        if latest is None:
            raise VjepaError(f"nothing to resume: {ckpt_dir} has no 'latest' checkpoint",
                             hint="start without --resume, or point --output-dir at the run to continue")
        return latest
    if latest is not None or list_checkpoints(ckpt_dir):
        raise VjepaError(f"{out} already holds checkpoints of a run",
                         hint="add --resume to continue it, or choose another --output-dir")
    return None


def run_pretrain(cfg: PretrainConfig, output_dir: str | Path | None = None, resume: bool = False,
                 name: str = "run", stop_at: int | None = None,
                 on_start: Callable[[dict], None] | None = None,
                 on_step: Callable[[StepInfo], None] | None = None) -> PretrainResult:
    """Pretrain an encoder + predictor as `cfg` says; write checkpoints, metrics and the model to the output dir.

    Args:
        cfg: the resolved recipe.
        output_dir: where to write (default `cfg.output_dir`, else `runs/<name>`).
        resume: continue from the output dir's `latest` checkpoint.
        name: run name (the recipe's stem) for the default output dir.
        stop_at: stop after this many steps (checkpointing there) although the schedules span `cfg.steps`.
        on_start: called once with the run's layout (devices, batches, parameters, start step).
        on_step: called after every optimizer step.
    """
    from vjepa_cli.data.masks import MaskCollator
    from vjepa_cli.data.sampler import LoaderIter, build_pretrain_loader
    from vjepa_cli.data.transforms import normalize_clips
    from vjepa_cli.models import build_encoder, build_predictor
    from vjepa_cli.train.ema import ema_update_, make_target
    from vjepa_cli.train.jepa import JepaModel, build_optimizer, set_hyperparams, target_features
    from vjepa_cli.train.loop_io import RunLog, export_model, init_weights_from
    from vjepa_cli.train.schedules import optim_values
    from vjepa_cli.train.sharding import clip_grad_norm_, full, grad_sync, reshard, shard_models
    from vjepa_cli.train.state import Gathered, load_training_state, save_training_state

    out = Path(output_dir or cfg.output_dir or Path("runs") / name)
    acc, dtype = _accelerator(cfg)
    rank, world = acc.process_index, acc.num_processes
    fsdp = cfg.distributed.strategy == "fsdp" and world > 1
    if cfg.distributed.strategy == "fsdp" and world == 1:
        log.info("distributed.strategy fsdp with one process: nothing to shard, training unsharded")
    latest = _prepare_output(cfg, out, resume)
    acc.wait_for_everyone()
    ckpt_dir = out / "checkpoints"
    k = cfg.grad_accum
    global_batch = cfg.batch_size * k * world

    # Data first: a missing manifest or bad video folder fails before any model is built.
    grid = cfg.grid
    collate = MaskCollator(cfg.mask, grid, seed=cfg.seed, rank=rank, world_size=world)
    with acc.main_process_first():  # synth data is generated once, by the main process
        loader, sampler = build_pretrain_loader(cfg.data, cfg.batch_size, cfg.seed, rank, world, collate_fn=collate)

    gen = torch.Generator().manual_seed(cfg.seed)
    encoder, predictor = build_encoder(cfg.model, generator=gen), build_predictor(cfg.model, generator=gen)
    init_target = init_weights_from(cfg.init_from, encoder, predictor) if cfg.init_from and latest is None else None
    target = make_target(encoder)
    if init_target is not None:
        target.load_state_dict(init_target, strict=True)
    jepa = JepaModel(encoder, predictor, cfg.optim.loss_exp, cfg.optim.reg_coeff)
    if fsdp:  # the target is sharded like the online encoder, so the EMA update is shard by shard
        shard_models([jepa, target], cfg.distributed, acc.device, dtype)
    else:
        jepa.to(acc.device)
        target.to(acc.device)
    optimizer = build_optimizer(jepa, cfg.optim, acc.device)
    modules = {"encoder": encoder, "predictor": predictor, "target_encoder": target}
    start, failures_state = 0, None
    if latest is not None:
        meta = load_training_state(latest, cfg, modules, optimizer)
        start, failures_state = int(meta["step"]), meta.get("failures")
        scaler_state = meta.get("scaler")
        if int(meta.get("global_batch", global_batch)) != global_batch:
            log.warning("the checkpoint was written at global batch %s, this run uses %s",
                        meta.get("global_batch"), global_batch)
    if cfg.compile and acc.device.type == "cpu":
        log.warning("compile: true on the CPU: torch.compile made tiny-cpu's step about 4x slower than eager here "
                    "(1.5 s vs 0.38 s); it is meant for CUDA")
    model = torch.compile(jepa) if cfg.compile else jepa
    if not fsdp:
        model, optimizer = acc.prepare(model, optimizer)
    if latest is not None and scaler_state and acc.scaler is not None:  # fp16 loss scale
        acc.scaler.load_state_dict(scaler_state)
    end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
    if start >= end:
        raise VjepaError(f"the run is already at step {start} of {end}", hint="raise steps (--set steps=N) to go on")

    sampler.load_state_dict({"step": start * k})  # micro-batch counter: exact data position on resume
    sampler.num_steps = end * k
    runlog = RunLog(cfg, out, acc.is_main_process, resume=latest is not None, start=start, failures=failures_state)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.yaml", dump_yaml(cfg))
    if on_start is not None:
        n_enc = sum(p.numel() for p in encoder.parameters())
        n_pred = sum(p.numel() for p in predictor.parameters())
        strategy = ("fsdp" if fsdp else "ddp") if world > 1 else "single process"
        on_start({"device": str(acc.device), "world_size": world, "strategy": strategy, "dtype": dtype,
                  "batch_size": cfg.batch_size, "grad_accum": k, "global_batch": global_batch, "start_step": start, "steps": cfg.steps,
                  "stop_at": end, "encoder_params": n_enc, "predictor_params": n_pred, "grid": grid,
                  "masks": cfg.mask.num_masks, "output_dir": str(out)})

    step, last_ckpt, interrupted, t_run = start, latest, False, time.perf_counter()
    it = LoaderIter(loader)
    try:
        with _StopFlag() as stop:
            while step < end:
                t0 = time.perf_counter()
                torch.manual_seed(step_seed(cfg.seed, rank, step))
                vals = optim_values(cfg.optim, step, cfg.steps)
                set_hyperparams(optimizer, vals.lr, vals.wd)
                wait, loss_sum, bad = 0.0, torch.zeros((), device=acc.device), []
                for micro in range(k):
                    tw = time.perf_counter()
                    batch = _next_batch(it)
                    wait += time.perf_counter() - tw
                    clips = normalize_clips(batch.clips, acc.device)  # (B, C, T, H, W) float32
                    ctx = [m.to(acc.device, non_blocking=True) for m in batch.context_masks]
                    tgt = [m.to(acc.device, non_blocking=True) for m in batch.target_masks]
                    bad.extend(batch.failures)
                    with acc.autocast():
                        h = target_features(target, clips)  # (B, N, D)
                    if fsdp:
                        reshard(target)  # no backward frees its gathered weights: do it here
                        grad_sync(jepa, micro == k - 1)
                    sync = acc.no_sync(model) if micro < k - 1 and not fsdp else contextlib.nullcontext()
                    with sync:
                        with acc.autocast():
                            loss = model(clips, h, ctx, tgt, grid)
                        acc.backward(loss / k)
                    loss_sum += loss.detach().float()
                # One reduction gives every rank the same loss and stop decision.
                shared = acc.reduce(torch.stack([loss_sum / k, torch.tensor(float(stop.set), device=acc.device)]),
                                    "sum")
                loss_val = float(shared[0]) / world
                if not math.isfinite(loss_val):
                    optimizer.zero_grad(set_to_none=True)
                    where = f"; the last good checkpoint is {last_ckpt}" if last_ckpt else ""
                    raise VjepaError(f"the loss became {loss_val} at step {step + 1}; stopped before updating the "
                                     f"weights{where}", hint="lower optim.lr or enable optim.clip_grad, then --resume")
                logging_step = (step + 1) % cfg.log_every == 0 or step + 1 == end
                if cfg.optim.clip_grad is not None and fsdp:
                    gnorm = clip_grad_norm_(list(jepa.parameters()), cfg.optim.clip_grad)
                elif cfg.optim.clip_grad is not None:
                    gnorm = acc.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                elif logging_step:  # under FSDP a collective, on every rank alike
                    gnorm = full(torch.nn.utils.get_total_norm([p.grad for p in jepa.parameters()
                                                                if p.grad is not None]))
                else:
                    gnorm = None
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                ema_update_(target, encoder, vals.ema)
                step += 1
                dt = time.perf_counter() - t0
                runlog.step(step, loss_val, vals, gnorm, dt, wait, bad, global_batch, h if logging_step else None)
                if on_step is not None:
                    on_step(StepInfo(step, cfg.steps, loss_val, vals.lr, runlog.clips_per_s))
                stop_now = float(shared[1]) > 0 or (world == 1 and stop.set)  # many ranks: agree via the reduction
                if step % cfg.checkpoint_every == 0 or step == end or stop_now:
                    if acc.is_main_process or fsdp:  # FSDP: every rank helps gather, the main one writes
                        extra = {"sampler": {"step": step * k}, "failures": runlog.failures.to_dict(),
                                 "world_size": world, "global_batch": global_batch, "name": name,
                                 "strategy": cfg.distributed.strategy if world > 1 else "single",
                                 "scaler": acc.scaler.state_dict() if acc.scaler is not None else None}
                        last_ckpt = save_training_state(ckpt_dir / checkpoint_name(step), cfg, step, modules,
                                                        optimizer, extra, write=acc.is_main_process)
                    if acc.is_main_process:
                        write_latest(ckpt_dir, last_ckpt)
                        prune_checkpoints(ckpt_dir, cfg.keep_last)
                    acc.wait_for_everyone()
                    last_ckpt = ckpt_dir / checkpoint_name(step)
                if stop_now:
                    interrupted = True
                    break
    except RuntimeError as e:  # torch's SIGCHLD handler raises this anywhere in the loop when a worker is killed
        if "DataLoader worker" not in str(e):
            raise
        raise resource_error(e, worker_hint="it was killed from outside (out of memory?): lower data.num_workers "
                                            "or batch_size, then --resume from the last checkpoint") from None
    finally:
        it.close()  # now, not at garbage collection: a killed worker must not stay registered with torch
        runlog.close()
    interrupted = interrupted or step < cfg.steps
    model_path = curve = None
    final = (target, predictor)
    if fsdp and not interrupted:  # gathered by every rank, written by the main one
        final = tuple(Gathered(m, keep=acc.is_main_process) for m in final)
    if acc.is_main_process:
        curve = runlog.loss_curve()
        if not interrupted:
            model_path = export_model(out / "model.safetensors", cfg, *final, step, name)
    seconds = time.perf_counter() - t_run
    return PretrainResult(
        output_dir=out, start_step=start, step=step, steps=cfg.steps, final_loss=runlog.last_loss,
        checkpoint=last_ckpt, model_path=model_path, loss_curve=curve, interrupted=interrupted,
        global_batch=global_batch, world_size=world, seconds=seconds,
        clips_per_s=(step - start) * global_batch / max(seconds, 1e-9), bad_videos=runlog.failures.count,
        warnings=runlog.warnings,
    )
