"""`vjepa wm train`: fit the action-conditioned predictor on cached frozen-encoder features.

Losses (V-JEPA 2-AC, Assran et al. 2025, eq. 2-4), both L1 on layer-normed features:
- teacher forcing: from frames 0..T-2 (true features) and actions predict frames 1..T-1;
- rollout: from frame 0 alone, predict `rollout_steps` frames autoregressively, each step fed the
  predictor's own previous outputs, against the true frames 1..k.
The loop is the `Trainer`'s (`WMTrainer`), through Accelerate (device placement, mixed precision); its
checkpoint, `checkpoint.safetensors`, is one atomic safetensors file holding the predictor, AdamW state, loss
scaler, RNG and step, so `--resume` continues exactly: window sampling is seeded by (seed, step), so no sampler
state needs saving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.wm import WMConfig, WMOptimConfig, WMPlanConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import SingleCheckpoint
from vjepa_cli.models.ac_predictor import ACPredictor, autoregress, select_states
from vjepa_cli.models.world_model import save_world_model
from vjepa_cli.runtime import mixed_precision, resolve_device, stable_hash
from vjepa_cli.train.accel import make_accelerator
from vjepa_cli.train.rundir import RunDir, disk_full_is_clear, resume_point
from vjepa_cli.train.runlog import RunLog
from vjepa_cli.train.schedules import warmup_stable_decay
from vjepa_cli.train.trainer import StepOutput, StopFlag, Trainer
from vjepa_cli.train.wm_data import WindowSampler, WMData, prepare_data
from vjepa_cli.train.wm_heads import (
    check_heads,
    check_state_dims,
    mean_spread,
    train_goal_reader,
    train_policy_head,
    train_reward_head,
    train_state_head,
)

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)
KIND = "world-model"  # the `kind` of our checkpoints


@dataclass(frozen=True)
class WMTrainResult:
    out_dir: Path  # run folder (config.yaml, metrics.jsonl, checkpoint.safetensors)
    model_path: Path | None  # the world-model file for `wm plan` / `wm eval` (None when interrupted)
    steps: int  # optimiser steps done in total
    final_loss: float  # mean loss over the last logging interval
    seconds: float  # wall time of this call's training loop
    episodes: int  # training episodes
    interrupted: bool = False  # stopped early by SIGINT/SIGTERM, after a checkpoint: continue with --resume


@dataclass
class WMStep(StepOutput):
    info: dict[str, Any] = field(default_factory=dict)  # step (1-based), loss, tf, rollout, lr


def wsd_lr(step: int, cfg: WMOptimConfig) -> float:
    """Warmup-stable-decay: linear start_lr -> lr over warmup, constant, linear -> final_lr over the anneal."""
    return warmup_stable_decay(step, lr=cfg.lr, start_lr=cfg.start_lr, final_lr=cfg.final_lr,
                               warmup=cfg.warmup_steps, decay_start=cfg.steps - cfg.anneal_steps,
                               decay_len=max(1, cfg.anneal_steps))


def state_error(s_hat: torch.Tensor, s: torch.Tensor, std: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean error of predicted states [..., S] against the recorded ones, each dimension divided by its spread
    std [S]: absolute ("l1") or squared ("l2")."""
    d = (s_hat - s) / std
    return d.abs().mean() if kind == "l1" else d.square().mean()


def teacher_forcing_loss(pred, z: torch.Tensor, a: torch.Tensor, s: torch.Tensor | None,
                         state_std: torch.Tensor | None = None, state_weight: float = 1.0,
                         state_loss: str = "l1") -> torch.Tensor:
    """`pred` is the predictor (any callable with its signature); z [B, T, N, D] features, a [B, T-1, A] actions,
    s [B, T, S] states -> mean |P(z_<t, a_<t) - z_t|. With `state_std` [S] (a predictor that predicts states),
    plus `state_weight` x the `state_error` of its predicted states s_1..s_T-1."""
    if state_std is None:
        out = pred(z[:, :-1], a, None if s is None else s[:, :-1])  # (B, T-1, N, D)
        return (out - z[:, 1:]).abs().mean()
    out, s_hat = pred(z[:, :-1], a, s[:, :-1], with_states=True)  # (B, T-1, N, D), (B, T-1, S)
    return (out - z[:, 1:]).abs().mean() + state_weight * state_error(s_hat, s[:, 1:], state_std, state_loss)


def rollout_loss(pred, z: torch.Tensor, a: torch.Tensor, s: torch.Tensor | None, steps: int,
                 state_std: torch.Tensor | None = None, state_weight: float = 1.0,
                 state_loss: str = "l1") -> torch.Tensor:
    """Predict frames 1..steps from frame 0 with the predictor's own outputs -> mean L1 against z[:, 1:steps+1].
    As in planning, only frame 0's state is known: it is held for the predicted frames, or, with `state_std`
    (a predictor that predicts states), fed forward from its own predictions, whose `state_error` adds
    `state_weight` x its value."""
    if state_std is None:
        out = autoregress(pred, z[:, :1], a[:, :steps], None if s is None else s[:, :1])  # (B, steps, N, D)
        return (out - z[:, 1:steps + 1]).abs().mean()
    out, s_hat = autoregress(pred, z[:, :1], a[:, :steps], s[:, :1], feed_states=True)  # (B, steps, S) states
    return ((out - z[:, 1:steps + 1]).abs().mean()
            + state_weight * state_error(s_hat, s[:, 1:steps + 1], state_std, state_loss))


def recipe_hash(cfg: WMConfig) -> str:
    """`config_hash` of the recipe with the plan settings in their earlier flat spelling, so that checkpoints
    written before the CEM settings were nested under `plan.cem` still resume (plan settings do not change
    training, and the CEM fields added since are not part of the hash); nor are the later settings that do
    not change the predictor's training (other planners, heads, evaluation goals, trackers)."""
    d = to_dict(cfg)
    d.pop("log_with")  # where the metrics also go does not change training
    cem = d["plan"].pop("cem")
    legacy = ("max_steps", "prior_weight")  # the other plan fields of the first release
    d["plan"] = {**{k: cem[k] for k in WMPlanConfig.ALIASES}, **{k: d["plan"][k] for k in legacy}}
    d.pop("heads")  # trained after the predictor, from the same features: no effect on its training
    if not d["predictor"]["action_norm"]:  # the behaviour before the option: checkpoints of then still resume
        d["predictor"].pop("action_norm")
    if not d["predictor"]["predict_states"]:  # likewise, and the states' loss weight matters only with it
        d["predictor"].pop("predict_states")
        d["loss"].pop("state_weight")
    if d["loss"]["state_loss"] == "l1":
        d["loss"].pop("state_loss")
    if not d["predictor"]["state_dims"]:
        d["predictor"].pop("state_dims")
    for k in ("goal_steps", "goal_policy", "success_radius"):  # evaluation goals only
        d["data"].pop(k)
    d["data"].pop("probe_resets")  # the state probe's extra poses: heads only
    return stable_hash(d, 12)


def build_predictor(cfg: WMConfig, embed_dim: int, grid: tuple[int, int], action_dim: int, state_dim: int,
                    action_low: tuple[float, ...] = (), action_high: tuple[float, ...] = (),
                    state_mean: tuple[float, ...] = (), state_std: tuple[float, ...] = ()) -> ACPredictor:
    """The predictor of the recipe's choices for this data and encoder (actions within [action_low,
    action_high], states of mean `state_mean` and spread `state_std`), drawn with the recipe's seed."""
    pcfg = cfg.predictor.ac_config(embed_dim=embed_dim, grid=grid, action_dim=action_dim, state_dim=state_dim,
                                   max_frames=max(16, cfg.data.num_frames), action_low=action_low,
                                   action_high=action_high, state_mean=state_mean, state_std=state_std)
    return ACPredictor(pcfg, generator=torch.Generator().manual_seed(cfg.seed))



def train_heads(cfg: WMConfig, data: WMData, predictor: ACPredictor | None = None,
                on_phase: Callable[[str, int], None] | None = None,
                on_step: Callable[[int, dict], None] | None = None) -> dict[str, tuple[torch.nn.Module, float]]:
    """The optional heads of the recipe (`heads.reward`, `.policy`, `.state`, `.goal_reader`) -> name: (head,
    final mean loss); the trained `predictor` gives the state probe its rollouts (`heads.state_rollout`);
    `on_phase("<name> head", steps)` announces each, `on_step(i, {"loss": ...})` follows it."""
    out = {}

    def rollout(ctx: torch.Tensor, acts: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        dev = next(predictor.parameters()).device
        held = select_states(predictor.cfg, states.to(dev)) if cfg.predictor.use_states else None
        return predictor.rollout(ctx.to(dev), acts.to(dev), held)

    state = partial(train_state_head, rollout=None if predictor is None else rollout, context=cfg.plan.context)
    h = cfg.heads
    for name, wanted, fit, steps in (("reward", h.reward, train_reward_head, h.steps),
                                     ("policy", h.policy, train_policy_head, h.steps),
                                     ("state", h.state, state, h.steps * h.state_members),
                                     ("goal_reader", h.goal_reader, train_goal_reader, h.reader_steps)):
        if wanted:
            if on_phase:
                on_phase("goal reader" if name == "goal_reader" else f"{name} head", steps)
            head, losses = fit(data, cfg.heads, cfg.seed, on_step=on_step)
            out[name] = (head, float(np.mean(losses[-max(1, len(losses) // 10):])))
            log.info("%s head: final loss %.4f", name, out[name][1])
    return out


def state_stats(data: WMData, dims: tuple[int, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-dimension mean and spread of the episodes' states at `dims` (a constant one gets a spread of 1)."""
    s = torch.cat([torch.as_tensor(x, dtype=torch.float64) for x in data.states])[:, list(dims)]  # (M, S)
    mean, std = mean_spread(s)
    return tuple(mean.tolist()), tuple(std.tolist())


class WMTrainer(Trainer):
    """The action-conditioned predictor on cached features: teacher-forcing + rollout L1, AdamW with the
    warmup-stable-decay schedule. Checkpoint: `<output>/checkpoint.safetensors`, replaced at each save."""

    nan_hint = "lower optim.lr"
    steps_key = "optim.steps"

    def __init__(self, cfg: WMConfig, acc: Accelerator, folder: RunDir, store: SingleCheckpoint, data: WMData):
        """The predictor for `data`'s features and actions (drawn with the recipe's seed) and its AdamW."""
        self.cfg, self.data = cfg, data
        self.windows = WindowSampler(data, cfg.data.num_frames, use_states=cfg.predictor.use_states)
        check_state_dims(data, "predictor.state_dims", cfg.predictor.state_dims)
        dims = tuple(cfg.predictor.state_dims) or tuple(range(data.state_dim))
        mean, std = state_stats(data, dims) if cfg.predictor.predict_states else ((), ())
        self.predictor = build_predictor(cfg, data.embed_dim, data.grid, data.action_dim, data.state_dim,
                                         data.action_low, data.action_high, mean, std)
        self.state_std = torch.tensor(std, device=acc.device) if std else None  # (S,) scales the states' L1
        o = cfg.optim
        opt = torch.optim.AdamW(self.predictor.parameters(), lr=o.start_lr, betas=o.betas,
                                weight_decay=o.weight_decay)
        super().__init__(acc, {"predictor": self.predictor}, opt, config=cfg, folder=folder, store=store,
                         runlog=RunLog(folder.path, acc.is_main_process, log_with=cfg.log_with, config=to_dict(cfg)),
                         checkpoint_every=cfg.checkpoint_every)
        self.model = self.predictor  # what the loop calls: wrapped by `prepare`
        self.losses: list[float] = []  # of the logging interval
        self.last_mean, self.t0 = float("nan"), time.perf_counter()

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """Only a world-model checkpoint of the very same recipe continues."""
        if state.get("kind") != KIND:
            raise VjepaError(f"{path} is not a world-model training checkpoint")
        if state.get("config_hash") != recipe_hash(self.cfg):
            raise VjepaError(f"{path} was written with a different recipe",
                             "resume with the same recipe and --set values")

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"kind": KIND, "config_hash": recipe_hash(self.cfg)}

    def prepare(self, end: int) -> None:
        super().prepare(end)
        self.model = self.accelerate(self.predictor)
        self.t0 = time.perf_counter()

    def train_step(self, stop: StopFlag) -> WMStep:
        """One batch of windows drawn by (seed, step), teacher-forcing + rollout loss, one AdamW update."""
        o, loss_cfg, acc, step = self.cfg.optim, self.cfg.loss, self.acc, self.step
        lr = wsd_lr(step, o)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        z, a, s = self.windows.sample(o.batch_size, np.random.default_rng([self.cfg.seed, step]), acc.device)
        s = select_states(self.predictor.cfg, s)  # (B, T, S) the entries the predictor reads
        self.model.train()
        with acc.autocast():
            sw = {"state_std": self.state_std, "state_weight": loss_cfg.state_weight,
                  "state_loss": loss_cfg.state_loss}
            tf = teacher_forcing_loss(self.model, z, a, s, **sw)
            ro = (rollout_loss(self.model, z, a, s, loss_cfg.rollout_steps, **sw) if loss_cfg.rollout_steps
                  else tf.new_zeros(()))
            loss = loss_cfg.tf_weight * tf + loss_cfg.rollout_weight * ro
        loss_val = float(loss.detach())
        self.check_finite(loss_val)
        self.optimizer.zero_grad(set_to_none=True)
        acc.backward(loss)
        if o.grad_clip > 0:
            acc.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        self.optimizer.step()
        return WMStep(loss_val, info={"step": step + 1, "loss": loss_val, "tf": float(tf.detach()),
                                      "rollout": float(ro.detach()), "lr": lr})

    def log_step(self, out: WMStep) -> None:
        """At a log step: the step's values and the interval's mean loss."""
        self.losses.append(out.loss)
        if self.step % self.cfg.log_every == 0 or self.step == self.end:
            self.last_mean = float(np.mean(self.losses))
            self.runlog.write({**out.info, "loss_mean": self.last_mean, "time": time.perf_counter() - self.t0})
            self.losses.clear()

    def finish(self, on_phase: Callable[[str, int], None] | None = None,
               on_step: Callable[[int, dict], None] | None = None) -> Path:
        """Train the heads (`on_phase` / `on_step` follow them, as in `train_heads`) and write the world-model
        file (frozen encoder + predictor + heads + what planning needs to know)."""
        d = self.data
        meta = {"action_names": d.action_names, "action_low": d.action_low, "action_high": d.action_high,
                "state_names": d.state_names, "fps": d.fps, "stride": d.stride, "env": d.env,
                "plan": to_dict(self.cfg.plan), "wm_config": to_dict(self.cfg), "step": self.step}
        path = self.folder.path / "wm.safetensors"
        if self.acc.is_main_process:
            predictor = self.acc.unwrap_model(self.model).eval()
            heads = train_heads(self.cfg, d, predictor, on_phase, on_step)
            meta["heads_loss"] = {k: v[1] for k, v in heads.items()}
            with disk_full_is_clear(path, self.last_checkpoint):
                save_world_model(path, d.encoder, predictor, meta,
                                 {k: v[0] for k, v in heads.items()})
        self.acc.wait_for_everyone()
        return path


def run_wm_train(cfg: WMConfig, out_dir: str | Path, resume: bool = False,
                 on_phase: Callable[[str, int], None] | None = None,
                 on_step: Callable[[int, dict], None] | None = None) -> WMTrainResult:
    """Collect (if asked), cache features, train, and write OUT/wm.safetensors.

    `on_phase(name, total)` announces "collect", "features", "train" and each head with their lengths;
    `on_step(i, info)` is called after every unit of the current phase (the CLI drives its progress bar with them). SIGINT/SIGTERM
    end the run after the step and a checkpoint (`interrupted`); a run that fails before its first step
    leaves its folder as it found it.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device, hint="use --set device=cpu")
    accel = make_accelerator(device, mixed_precision(cfg.optim.mixed_precision, device))
    with RunDir(out_dir, main=accel.is_main_process) as folder:  # locked; left as found if no step runs
        store = SingleCheckpoint(out_dir / "checkpoint.safetensors")
        latest = resume_point(store, out_dir, resume)
        data = prepare_data(cfg, out_dir, accel.device, on_phase, on_step)
        check_heads(data, cfg.heads)
        trainer = WMTrainer(cfg, accel, folder, store, data)
        if latest is not None:
            trainer.load(latest)
        trainer.prepare(cfg.optim.steps)
        if on_phase:
            on_phase("train", cfg.optim.steps)
        stopped = trainer.train(None if on_step is None else lambda s: on_step(trainer.step - 1, s.info))
        model_path = None if stopped else trainer.finish(on_phase, on_step)
    return WMTrainResult(out_dir, model_path, trainer.step, trainer.last_mean, time.perf_counter() - trainer.t0,
                         len(data.features), interrupted=stopped)
