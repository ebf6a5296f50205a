"""`vjepa decoder train`: fit a feature decoder (`models.decoder`) on a frozen encoder's features.

Clips are cut and encoded once (`train.decoder_data`); the loop is the `Trainer`'s (`DecoderTrainer`), through
Accelerate (device placement, mixed precision). Each step's batch and noise are drawn from (seed, step), so
the checkpoint (`<run>/checkpoint.safetensors`: decoder, AdamW state, RNG, step) resumes exactly with no
sampler state. The run folder (config.yaml, metrics.jsonl, checkpoint) sits beside the decoder file: `-o
decoder.safetensors` trains in `decoder.run/` unless told otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.decoder import DecoderTrainConfig, FeatureDecoderConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import SingleCheckpoint
from vjepa_cli.models.decoder import FeatureDecoder, save_decoder
from vjepa_cli.runtime import mixed_precision, resolve_device, stable_hash
from vjepa_cli.train.accel import make_accelerator
from vjepa_cli.train.decoder_data import DecoderData, Encoder, open_encoder, prepare_data
from vjepa_cli.train.rundir import RunDir, disk_full_is_clear, resume_point
from vjepa_cli.train.runlog import RunLog
from vjepa_cli.train.schedules import warmup_cosine
from vjepa_cli.train.trainer import StepOutput, StopFlag, Trainer

if TYPE_CHECKING:
    from accelerate import Accelerator

KIND = "decoder"  # the `kind` of our decoder checkpoints


@dataclass(frozen=True)
class DecoderTrainResult:
    output: Path | None  # the decoder file (None when interrupted)
    run_dir: Path  # config.yaml, metrics.jsonl, checkpoint.safetensors
    kind: str  # regression or generative
    steps: int  # optimizer steps done in total
    final_loss: float  # mean loss over the last logging interval
    seconds: float  # wall time of this call's training loop
    samples: int  # training (features, frames) pairs
    interrupted: bool = False  # stopped by SIGINT/SIGTERM after a checkpoint: continue with --resume


@dataclass
class DecoderStep(StepOutput):
    info: dict[str, Any] = field(default_factory=dict)  # step (1-based), loss, lr


def default_run_dir(output: str | Path) -> Path:
    """`runs/x/decoder.safetensors` -> `runs/x/decoder.run`."""
    output = Path(output)
    return output.with_name(output.stem + ".run")


def build_decoder(cfg: DecoderTrainConfig, enc: Encoder) -> FeatureDecoder:
    """The decoder of the recipe's choices for `enc`, drawn with the recipe's seed."""
    m = enc.config
    dcfg = FeatureDecoderConfig.for_encoder(cfg.decoder, embed_dim=enc.embed_dim, patch_size=m.patch_size,
                                            tubelet_size=m.tubelet_size, img_size=m.img_size)
    return FeatureDecoder(dcfg, generator=torch.Generator().manual_seed(cfg.seed))


def recipe_hash(cfg: DecoderTrainConfig) -> str:
    """The recipe's hash without what may change on resume: the device, the run's length and its bookkeeping."""
    d = to_dict(cfg)
    for k in ("device", "checkpoint_every", "log_every"):
        d.pop(k)
    d["optim"].pop("steps")  # raised to go on (the schedule then spans the new length)
    return stable_hash(d, 12)


class DecoderTrainer(Trainer):
    """The decoder's loop: its loss (`FeatureDecoder.loss`), AdamW with warmup + cosine decay."""

    nan_hint = "lower optim.lr"
    steps_key = "optim.steps"

    def __init__(self, cfg: DecoderTrainConfig, acc: Accelerator, folder: RunDir, store: SingleCheckpoint,
                 enc: Encoder, data: DecoderData):
        self.cfg, self.data, self.enc = cfg, data, enc
        self.decoder = build_decoder(cfg, enc)
        o = cfg.optim
        opt = torch.optim.AdamW(self.decoder.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        super().__init__(acc, {"decoder": self.decoder}, opt, config=cfg, folder=folder, store=store,
                         runlog=RunLog(folder.path, acc.is_main_process), checkpoint_every=cfg.checkpoint_every)
        self.model = self.decoder
        self.losses: list[float] = []
        self.last_mean, self.t0 = float("nan"), time.perf_counter()

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        if state.get("kind") != KIND:
            raise VjepaError(f"{path} is not a decoder training checkpoint")
        if state.get("config_hash") != recipe_hash(self.cfg):
            raise VjepaError(f"{path} was written with a different recipe, model or data",
                             "resume with the same --model, --data, --kind and --set values")

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"kind": KIND, "config_hash": recipe_hash(self.cfg)}

    def prepare(self, end: int) -> None:
        super().prepare(end)
        self.model = self.accelerate(self.decoder)
        self.t0 = time.perf_counter()

    def lr(self, step: int) -> float:
        o = self.cfg.optim
        return warmup_cosine(step, lr=o.lr, start_lr=o.lr / 10, final_lr=o.final_lr, warmup=o.warmup_steps,
                             t_max=o.steps)

    def train_step(self, stop: StopFlag) -> DecoderStep:
        """A batch and noise drawn by (seed, step), the decoder's loss, one AdamW update."""
        o, acc, step = self.cfg.optim, self.acc, self.step
        lr = self.lr(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        feats, frames = self.data.batch(o.batch_size, np.random.default_rng([self.cfg.seed, step]), acc.device)
        gen = torch.Generator().manual_seed(int(stable_hash([self.cfg.seed, step], 12), 16))
        self.model.train()
        with acc.autocast():
            loss = self.model(feats, frames, gen, self.cfg.decoder.grad_weight)  # forward = the loss (DDP sees it)
        loss_val = float(loss.detach())
        self.check_finite(loss_val)
        self.optimizer.zero_grad(set_to_none=True)
        acc.backward(loss)
        if o.grad_clip > 0:
            acc.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        self.optimizer.step()
        return DecoderStep(loss_val, info={"step": step + 1, "loss": loss_val, "lr": lr})

    def log_step(self, out: DecoderStep) -> None:
        self.losses.append(out.loss)
        if self.step % self.cfg.log_every == 0 or self.step == self.end:
            self.last_mean = float(np.mean(self.losses))
            self.runlog.write({**out.info, "loss_mean": self.last_mean, "time": time.perf_counter() - self.t0})
            self.losses.clear()

    def finish(self, output: Path) -> Path:
        """Write the decoder file, with what it was trained on."""
        m = self.enc.config
        meta = {"encoder_config": to_dict(m), "model": str(self.enc.path.resolve()),
                "single_frames": self.enc.single_frames, "train_config": to_dict(self.cfg), "step": self.step}
        if self.acc.is_main_process:
            with disk_full_is_clear(output, self.last_checkpoint):
                save_decoder(output, self.acc.unwrap_model(self.model).eval(), meta)
        self.acc.wait_for_everyone()
        return output


def run_decoder_train(cfg: DecoderTrainConfig, output: str | Path, run_dir: str | Path | None = None,
                      resume: bool = False, on_phase: Callable[[str, int], None] | None = None,
                      on_step: Callable[[int, dict], None] | None = None) -> DecoderTrainResult:
    """Cut and encode clips, train, and write the decoder file `output`.

    `on_phase(name, total)` announces "features" and "train"; `on_step(i, info)` follows each unit of the
    phase (the CLI's progress bar). A run that fails before its first step leaves its folder as it found it.
    """
    output = Path(output)
    if output.suffix != ".safetensors":
        raise VjepaError(f"cannot write a decoder to {output.name}", hint="-o must end in .safetensors")
    if not cfg.model:
        raise VjepaError("no model given", hint="pass --model model.safetensors")
    run_dir = Path(run_dir) if run_dir else default_run_dir(output)
    device = resolve_device(cfg.device or None, hint="use --set device=cpu")
    accel = make_accelerator(device, mixed_precision(cfg.optim.mixed_precision, device))
    enc = open_encoder(cfg.model, accel.device)
    with RunDir(run_dir, main=accel.is_main_process) as folder:
        store = SingleCheckpoint(run_dir / "checkpoint.safetensors")
        latest = resume_point(store, run_dir, resume)
        data = prepare_data(enc, cfg.data, cfg.seed, accel.device, on_phase,
                            None if on_step is None else lambda n: on_step(-1, {}))
        trainer = DecoderTrainer(cfg, accel, folder, store, enc, data)
        if latest is not None:
            trainer.load(latest)
        trainer.prepare(cfg.optim.steps)
        if on_phase:
            on_phase("train", cfg.optim.steps)
        stopped = trainer.train(None if on_step is None else lambda s: on_step(trainer.step - 1, s.info))
        path = None if stopped else trainer.finish(output)
    return DecoderTrainResult(path, run_dir, cfg.decoder.kind, trainer.step, trainer.last_mean,
                              time.perf_counter() - trainer.t0, len(data.features), interrupted=stopped)
