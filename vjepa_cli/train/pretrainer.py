"""`PretrainTrainer`: one V-JEPA pretraining step (the sequence is at `vjepa_cli.train.jepa`), its records, its
checkpoints' run metadata and the model file at the end; the loop, state and checkpoints are the `Trainer`'s.

Everything random is a function of (seed, step): weights from the seed, clips and masks from (seed, step,
index) in the collator, dropout and stochastic depth from a per-step reseed of the global RNG (`step_seed`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.data.masks import MaskCollator
from vjepa_cli.data.sampler import LoaderIter, build_pretrain_loader
from vjepa_cli.data.transforms import normalize_clips
from vjepa_cli.errors import VjepaError, resource_error
from vjepa_cli.io.checkpoint import StepCheckpoints
from vjepa_cli.models import build_encoder, build_predictor
from vjepa_cli.train.ema import ema_update_, make_target
from vjepa_cli.train.export import export_model, init_weights_from
from vjepa_cli.train.jepa import JepaModel, build_optimizer, set_hyperparams, target_features
from vjepa_cli.train.loss import effective_rank, feature_std
from vjepa_cli.train.rundir import RunDir, disk_full_is_clear
from vjepa_cli.train.runlog import RunLog, Window
from vjepa_cli.train.schedules import StepValues, optim_values
from vjepa_cli.train.sharding import Gathered, clip_grad_norm_, full, grad_sync, reshard, shard_models
from vjepa_cli.train.trainer import StepOutput, StopFlag, Trainer

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)
_MIX = 0x9E3779B97F4A7C15
DATA_BOUND_SHARE = 0.2  # warn when waiting for data takes more than this share of the step time


@dataclass
class PretrainStep(StepOutput):
    vals: StepValues | None = None  # this step's lr, weight decay and EMA momentum
    grad_norm: Tensor | None = None  # before clipping; only computed when clipping or logging
    seconds: float = 0.0
    data_wait: float = 0.0  # seconds spent waiting for batches
    failures: list = field(default_factory=list)  # bad video reads of the step's batches
    targets: Tensor | None = None  # (B, N, D) the last micro-batch's target features, on a log step only


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the global torch RNG for one step on one rank (stochastic depth and any other global draw)."""
    return ((seed * _MIX) ^ (rank * 1_000_003 + step)) % (2**63 - 1)


def _next_batch(it: Iterator):
    """next(it), with a user error raised in a loader worker shown as its one-line message, not a traceback."""
    try:
        return next(it)
    except VjepaError as e:
        text = str(e.message)
        if "Traceback" not in text:
            raise
        last = text.strip().splitlines()[-1]
        raise VjepaError(last.split("VjepaError: ", 1)[-1]) from None


class PretrainTrainer(Trainer):
    """V-JEPA pretraining: the online encoder + predictor (`JepaModel`) trained by AdamW, the EMA target encoder
    following the encoder. One step: `grad_accum` micro-batches (clips and masks from the collator), one
    update, one EMA update. Checkpoints: `<output>/checkpoints/step_*.safetensors`.
    """

    nan_hint = "lower optim.lr or enable optim.clip_grad, then --resume"

    def __init__(self, cfg: PretrainConfig, acc: Accelerator, dtype: str, folder: RunDir, store: StepCheckpoints,
                 name: str, init: bool):
        """Data, models (placed, or sharded under FSDP) and optimizer of `cfg`; `init`: a new run, which starts
        from `cfg.init_from` when the recipe names weights (a resumed one gets its checkpoint's)."""
        rank, world = acc.process_index, acc.num_processes
        self.cfg, self.dtype, self.name, self.grid = cfg, dtype, name, cfg.grid
        fsdp = cfg.distributed.strategy == "fsdp" and world > 1
        # Data first: a missing manifest or bad video folder fails before any model is built.
        with acc.main_process_first():  # synth data is generated once, by the main process
            sampler = self._build_data(rank, world)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.encoder = build_encoder(cfg.model, generator=gen)
        self.predictor = build_predictor(cfg.model, generator=gen)
        init_target = None
        if cfg.init_from and init:
            init_target = init_weights_from(cfg.init_from, self.encoder, self.predictor)
        self.target = make_target(self.encoder)
        if init_target is not None:
            self.target.load_state_dict(init_target, strict=True)
        self.jepa = self._build_jepa()
        if fsdp:  # the target is sharded like the online encoder, so the EMA update is shard by shard
            shard_models([self.jepa, self.target], cfg.distributed, acc.device, dtype)
        else:
            self.jepa.to(acc.device)
            self.target.to(acc.device)
        super().__init__(
            acc, {"encoder": self.encoder, "predictor": self.predictor, "target_encoder": self.target},
            build_optimizer(self.jepa, cfg.optim, acc.device), config=cfg, folder=folder, store=store,
            runlog=RunLog(folder.path, acc.is_main_process, cfg.tensorboard, cfg.log_with, to_dict(cfg)),
            checkpoint_every=cfg.checkpoint_every, sampler=sampler, micro_batches=cfg.grad_accum, sharded=fsdp)
        self.model = self.jepa  # what the loop calls: compiled and/or wrapped by `prepare`
        self.global_batch = cfg.batch_size * cfg.grad_accum * world
        self.window, self.clips_per_s, self.last_loss = Window(), 0.0, None
        self._batches = None  # a LoaderIter while training

    def _build_data(self, rank: int, world: int):
        """The loader of this rank's batches (`self.loader`); returns its sampler."""
        cfg = self.cfg
        collate = MaskCollator(cfg.mask, self.grid, seed=cfg.seed, rank=rank, world_size=world)
        self.loader, sampler = build_pretrain_loader(cfg.data, cfg.batch_size, cfg.seed, rank, world,
                                                     collate_fn=collate)
        return sampler

    def _build_jepa(self) -> JepaModel:
        return JepaModel(self.encoder, self.predictor, self.cfg.optim.loss_exp, self.cfg.optim.reg_coeff,
                         mask_batching=self.cfg.mask_batching)

    def _open_batches(self):
        """An iterator over this rank's batches, with a `close()` (see `LoaderIter`)."""
        return LoaderIter(self.loader)

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """Only a checkpoint of this architecture continues (a changed global batch is allowed, with a warning)."""
        want = _architecture(to_dict(self.cfg.model.resolve()))
        have = _architecture(state["model"]) if state.get("model") else None
        if have != want:
            diff = sorted(k for k in set(want) | set(have or {}) if (have or {}).get(k) != want.get(k))
            raise VjepaError(f"{path} was trained with another architecture (differs in: {', '.join(diff)})",
                             hint="resume with the recipe it was written with, or use another -o/--output folder")
        if int(state.get("global_batch", self.global_batch)) != self.global_batch:
            log.warning("the checkpoint was written at global batch %s, this run uses %s",
                        state.get("global_batch"), self.global_batch)

    def checkpoint_meta(self) -> dict[str, Any]:
        world = self.acc.num_processes
        return {"config": to_dict(self.cfg), "model": to_dict(self.cfg.model.resolve()), "world_size": world,
                "global_batch": self.global_batch, "name": self.name,
                "strategy": self.cfg.distributed.strategy if world > 1 else "single"}

    def prepare(self, end: int) -> None:
        super().prepare(end)
        if self.cfg.compile and self.acc.device.type == "cpu":
            log.warning("compile: true on the CPU: torch.compile made tiny-cpu's step about 4x slower than eager "
                        "here (1.5 s vs 0.38 s); it is meant for CUDA")
        self.model = torch.compile(self.jepa) if self.cfg.compile else self.jepa
        if not self.sharded:
            self.model = self.accelerate(self.model)
        self.sampler.num_steps = end * self.micro_batches

    def layout(self) -> dict[str, Any]:
        """The run's layout, for the `on_start` callback."""
        world = self.acc.num_processes
        return {"device": str(self.acc.device), "world_size": world, "dtype": self.dtype,
                "strategy": ("fsdp" if self.sharded else "ddp") if world > 1 else "single process",
                "batch_size": self.cfg.batch_size, "grad_accum": self.micro_batches,
                "global_batch": self.global_batch, "start_step": self.step, "steps": self.cfg.steps, "stop_at": self.end,
                "encoder_params": sum(p.numel() for p in self.encoder.parameters()),
                "predictor_params": sum(p.numel() for p in self.predictor.parameters()),
                "grid": self.grid, "masks": self.cfg.mask.num_masks, "output_dir": str(self.folder.path)}

    def train(self, on_step: Callable[[StepOutput], None] | None = None) -> bool:
        """The `Trainer`'s loop over the loader's batches; a loader worker killed from outside (the OOM killer)
        is one line saying how to go on."""
        self._batches = self._open_batches()
        try:
            return super().train(on_step)
        except RuntimeError as e:  # torch's SIGCHLD handler raises this anywhere in the loop
            if "DataLoader worker" not in str(e):
                raise
            raise resource_error(e, worker_hint="it was killed from outside (out of memory?): lower data.num_workers "
                                 "or batch_size, then --resume from the last checkpoint") from None
        finally:
            self._batches.close()  # now, not at garbage collection: a killed worker must not stay registered
            self._batches = None

    def train_step(self, stop: StopFlag) -> PretrainStep:
        """`grad_accum` micro-batches, one AdamW update at this step's lr / wd, one EMA update of the target."""
        cfg, acc, k = self.cfg, self.acc, self.micro_batches
        t0 = time.perf_counter()
        torch.manual_seed(step_seed(cfg.seed, acc.process_index, self.step))
        vals = optim_values(cfg.optim, self.step, cfg.steps)
        set_hyperparams(self.optimizer, vals.lr, vals.wd)
        wait, loss_sum, bad = 0.0, torch.zeros((), device=acc.device), []
        for micro in range(k):
            tw = time.perf_counter()
            batch = _next_batch(self._batches)
            wait += time.perf_counter() - tw
            bad.extend(batch.failures)
            loss, h = self._forward_backward(batch, last=micro == k - 1)
            loss_sum += loss
        # One reduction gives every rank the same loss and stop decision.
        stop_vote = torch.full((), float(stop.set), device=acc.device)  # a fill, not a blocking host copy
        shared = acc.reduce(torch.stack([loss_sum / k, stop_vote]), "sum")
        loss_val = float(shared[0]) / acc.num_processes
        self.check_finite(loss_val)
        logging_step = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == self.end
        gnorm = self._clip_grads(logging_step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        ema_update_(self.target, self.encoder, vals.ema)
        return PretrainStep(loss_val, float(shared[1]) > 0, vals, gnorm, time.perf_counter() - t0, wait, bad,
                            h if logging_step else None)

    def _forward_backward(self, batch, last: bool) -> tuple[Tensor, Tensor]:
        """One micro-batch: targets, forward, backward (gradients synchronised on the `last` one) -> (the loss,
        detached, float32; the normalised target features (B, N, D))."""
        acc = self.acc
        clips = normalize_clips(batch.clips, acc.device)  # (B, C, T, H, W) float32
        ctx = [m.to(acc.device, non_blocking=True) for m in batch.context_masks]  # [(B, K_ctx)] per mask pair
        tgt = [m.to(acc.device, non_blocking=True) for m in batch.target_masks]  # [(B, K_tgt)]
        with acc.autocast():
            h = target_features(self.target, clips)  # (B, N, D)
        if self.sharded:
            reshard(self.target)  # no backward frees its gathered weights: do it here
            grad_sync(self.jepa, last)
        sync = acc.no_sync(self.model) if not last and not self.sharded else contextlib.nullcontext()
        with sync:
            with acc.autocast():
                loss = self.model(clips, h, ctx, tgt, self.grid)
            acc.backward(loss / self.micro_batches)
        return loss.detach().float(), h

    def _clip_grads(self, logging_step: bool) -> Tensor | None:
        """Clip to `optim.clip_grad` when set; returns the gradient norm (also without clipping on a log step)."""
        clip = self.cfg.optim.clip_grad
        if clip is not None and self.sharded:
            return clip_grad_norm_(list(self.jepa.parameters()), clip)
        if clip is not None:
            return self.acc.clip_grad_norm_(self.model.parameters(), clip)
        if logging_step:  # under FSDP a collective, on every rank alike
            grads = [p.grad for p in self.jepa.parameters() if p.grad is not None]
            return full(torch.nn.utils.get_total_norm(grads))
        return None

    def log_step(self, out: PretrainStep) -> None:
        """Accumulate the logging window; at a log step (`out.targets` given) write its record and warnings."""
        w, gb = self.window, self.global_batch
        self.runlog.failures.update(out.failures)
        w.add(loss=out.loss, time=out.seconds, wait=out.data_wait, bad=len(out.failures))
        self.last_loss = out.loss
        self.clips_per_s = gb / max(out.seconds, 1e-9) if w.n == 1 else w.n * gb / w.sums["time"]
        if out.targets is None:
            return
        share = w.sums["wait"] / max(w.sums["time"], 1e-9)
        std = feature_std(out.targets)
        self.runlog.write({
            "step": self.step, "loss": w.mean("loss"), "lr": out.vals.lr, "wd": out.vals.wd, "ema": out.vals.ema,
            "grad_norm": None if out.grad_norm is None else float(out.grad_norm),
            "clips_per_s": w.n * gb / max(w.sums["time"], 1e-9), "data_wait": share, "target_std": std,
            "target_erank": effective_rank(out.targets), "bad_videos": int(w.sums["bad"]),
            "bad_videos_total": self.runlog.failures.count, **self.extra_record(),
        })
        if std < self.cfg.collapse_std:
            self.runlog.warn("collapse", f"step {self.step}: target-feature std {std:.3g} is below "
                             f"{self.cfg.collapse_std} (representation collapse?); consider a lower lr or a slower EMA")
        if share > DATA_BOUND_SHARE and self.step > self.cfg.log_every:  # the first window includes worker start-up
            self.runlog.warn("data", f"step {self.step}: waiting for data takes {share:.0%} of the step time; raise "
                             "data.num_workers or preprocess the videos (`vjepa preprocess`)")
        w.reset()

    def extra_record(self) -> dict[str, Any]:
        """More fields for this log step's metrics record (a subclass's own terms)."""
        return {}

    def finish(self, interrupted: bool) -> tuple[Path | None, Path | None]:
        """The loss curve, and the model file of a finished run -> (model path, curve path), each None if not
        written. Under FSDP every process gathers the weights, the main one writes."""
        final = (self.target, self.predictor)
        if self.sharded and not interrupted:
            final = tuple(Gathered(m, keep=self.acc.is_main_process) for m in final)
        if not self.acc.is_main_process:
            return None, None
        curve, model_path = self.runlog.loss_curve(), None
        if not interrupted:
            path = self.folder.path / "model.safetensors"
            with disk_full_is_clear(path, self.last_checkpoint):
                model_path = export_model(path, self.cfg, *final, self.step, self.name)
        return model_path, curve


def _architecture(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k != "checkpointing"}  # a runtime choice, not the architecture
