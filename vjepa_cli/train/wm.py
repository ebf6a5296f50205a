"""`vjepa wm train`: fit the action-conditioned predictor on cached frozen-encoder features.

Losses (V-JEPA 2-AC, Assran et al. 2025, eq. 2-4), both L1 on layer-normed features:
- teacher forcing: from frames 0..T-2 (true features) and actions predict frames 1..T-1;
- rollout: from frame 0 alone, predict `rollout_steps` frames autoregressively, each step fed the
  predictor's own previous outputs, against the true frames 1..k.
The loop runs through Accelerate (device placement, mixed precision); checkpoints are atomic
safetensors holding the predictor, AdamW state and step, so `--resume` continues exactly: window
sampling is seeded by (seed, step), so no sampler state needs saving.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config._load import config_hash, dump_yaml, to_dict
from vjepa_cli.config.wm import WMConfig, WMOptimConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.models.ac_predictor import ACPredictor, autoregress
from vjepa_cli.models.world_model import save_world_model
from vjepa_cli.runtime import resolve_device
from vjepa_cli.train.metrics import MetricsWriter
from vjepa_cli.train.schedules import warmup_stable_decay
from vjepa_cli.train.wm_data import WindowSampler, prepare_data
from vjepa_cli.train.wm_state import load_train_state, save_train_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WMTrainResult:
    out_dir: Path  # run folder (config.yaml, metrics.jsonl, checkpoint.safetensors)
    model_path: Path  # the world-model file for `wm plan` / `wm eval`
    steps: int  # optimiser steps done in total
    final_loss: float  # mean loss over the last logging interval
    seconds: float  # wall time of this call's training loop
    episodes: int  # training episodes


def wsd_lr(step: int, cfg: WMOptimConfig) -> float:
    """Warmup-stable-decay: linear start_lr -> lr over warmup, constant, linear -> final_lr over the anneal."""
    return warmup_stable_decay(step, lr=cfg.lr, start_lr=cfg.start_lr, final_lr=cfg.final_lr,
                               warmup=cfg.warmup_steps, decay_start=cfg.steps - cfg.anneal_steps,
                               decay_len=max(1, cfg.anneal_steps))


def teacher_forcing_loss(pred, z: torch.Tensor, a: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
    """`pred` is the predictor (any callable with its signature); z [B, T, N, D] features, a [B, T-1, A] actions, s [B, T, S] states -> mean |P(z_<t, a_<t) - z_t|."""
    out = pred(z[:, :-1], a, None if s is None else s[:, :-1])  # (B, T-1, N, D)
    return (out - z[:, 1:]).abs().mean()


def rollout_loss(pred, z: torch.Tensor, a: torch.Tensor, s: torch.Tensor | None, steps: int) -> torch.Tensor:
    """Predict frames 1..steps from frame 0 with the predictor's own outputs -> mean L1 against z[:, 1:steps+1]."""
    out = autoregress(pred, z[:, :1], a[:, :steps], None if s is None else s[:, :steps])  # (B, steps, N, D)
    return (out - z[:, 1:steps + 1]).abs().mean()


def build_predictor(cfg: WMConfig, embed_dim: int, grid: tuple[int, int], action_dim: int, state_dim: int) -> ACPredictor:
    """The predictor of the recipe's choices for this data and encoder, drawn with the recipe's seed."""
    pcfg = cfg.predictor.ac_config(embed_dim=embed_dim, grid=grid, action_dim=action_dim, state_dim=state_dim,
                                   max_frames=max(16, cfg.data.num_frames))
    return ACPredictor(pcfg, generator=torch.Generator().manual_seed(cfg.seed))



def run_wm_train(cfg: WMConfig, out_dir: str | Path, resume: bool = False,
                 on_phase: Callable[[str, int], None] | None = None,
                 on_step: Callable[[int, dict], None] | None = None) -> WMTrainResult:
    """Collect (if asked), cache features, train, and write OUT/wm.safetensors.

    `on_phase(name, total)` announces "collect", "features" and "train" with their lengths; `on_step(i, info)`
    is called after every unit of the current phase (the CLI drives its progress bar with them).
    """
    from accelerate import Accelerator

    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint.safetensors"
    if resume and not ckpt.is_file():
        raise VjepaError(f"--resume: no checkpoint in {out_dir}", "run without --resume first")
    if not resume and ckpt.is_file():
        raise VjepaError(f"{out_dir} already holds a run", "add --resume to continue it, or choose a new -o")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "config.yaml", dump_yaml(cfg))
    device = resolve_device(cfg.device, hint="use --set device=cpu")
    accel = Accelerator(cpu=device.type == "cpu", mixed_precision=cfg.optim.mixed_precision)
    data = prepare_data(cfg, out_dir, accel.device, on_phase, on_step)
    sampler = WindowSampler(data, cfg.data.num_frames, use_states=cfg.predictor.use_states)
    predictor = build_predictor(cfg, data.embed_dim, data.grid, data.action_dim, data.state_dim)
    o = cfg.optim
    opt = torch.optim.AdamW(predictor.parameters(), lr=o.start_lr, betas=o.betas, weight_decay=o.weight_decay)
    start = 0
    if resume:
        start = load_train_state(ckpt, predictor, opt, config_hash(cfg))
    predictor, opt = accel.prepare(predictor, opt)
    if on_phase:
        on_phase("train", o.steps)
    main = accel.is_main_process  # only one process writes (multi-GPU runs are untested)
    metrics = MetricsWriter(out_dir, resume_step=start if resume else None) if main else None
    window: list[float] = []
    t0, last = time.perf_counter(), float("nan")
    try:
        for step in range(start, o.steps):
            lr = wsd_lr(step, o)
            for g in opt.param_groups:
                g["lr"] = lr
            z, a, s = sampler.sample(o.batch_size, np.random.default_rng([cfg.seed, step]), accel.device)
            predictor.train()
            with accel.autocast():
                tf = teacher_forcing_loss(predictor, z, a, s)
                ro = rollout_loss(predictor, z, a, s, cfg.loss.rollout_steps) if cfg.loss.rollout_steps else tf.new_zeros(())
                loss = cfg.loss.tf_weight * tf + cfg.loss.rollout_weight * ro
            loss_val = float(loss.detach())
            if not math.isfinite(loss_val):
                raise VjepaError(f"loss became {loss_val} at step {step}", "lower optim.lr")
            opt.zero_grad(set_to_none=True)
            accel.backward(loss)
            if o.grad_clip > 0:
                accel.clip_grad_norm_(predictor.parameters(), o.grad_clip)
            opt.step()
            window.append(loss_val)
            info = {"step": step + 1, "loss": loss_val, "tf": float(tf.detach()), "rollout": float(ro.detach()), "lr": lr}
            if (step + 1) % cfg.log_every == 0 or step + 1 == o.steps:
                last = float(np.mean(window))
                if metrics is not None:
                    metrics.write({**info, "loss_mean": last, "time": time.perf_counter() - t0})
                window.clear()
            if main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == o.steps):
                save_train_state(ckpt, accel.unwrap_model(predictor), opt, step + 1, config_hash(cfg))
            if on_step:
                on_step(step, info)
    finally:
        if metrics is not None:
            metrics.close()
    raw = accel.unwrap_model(predictor).eval()
    meta = {"action_names": data.action_names, "action_low": data.action_low, "action_high": data.action_high,
            "state_names": data.state_names, "fps": data.fps, "stride": data.stride, "env": data.env,
            "plan": to_dict(cfg.plan), "wm_config": to_dict(cfg), "step": o.steps}
    model_path = out_dir / "wm.safetensors"
    if main:
        save_world_model(model_path, data.encoder, raw, meta)
    accel.wait_for_everyone()
    return WMTrainResult(out_dir, model_path, o.steps, last, time.perf_counter() - t0, len(data.features))
