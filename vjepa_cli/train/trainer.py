"""The `Trainer`: what a training run holds, and how it steps, checkpoints and resumes (torchtitan's `Trainer`
is the model). `vjepa pretrain` (`PretrainTrainer`) and `vjepa wm train` (`WMTrainer`) are its subclasses.

A subclass builds its models, optimizer and data, and says what one optimizer step is (`train_step`), what it
logs (`log_step`) and what its checkpoints record about the run (`checkpoint_meta`, `check_checkpoint`). The
base class owns the rest:
- `state_dict()` / `load_state_dict()`: everything resumable (listed at `Trainer.state_dict`);
- `train()`: the loop: a checkpoint every `checkpoint_every` steps and at the end; SIGINT/SIGTERM finish the
  step, checkpoint and return; a non-finite loss stops before the update;
- `checkpoint()` / `load(path)`: that state in one safetensors file (`vjepa_cli.io.checkpoint.save_state`); a
  full disk ends the run in one line, the previous checkpoint intact.
The run's folder (`RunDir`) is committed after the first step: only then are `config.yaml` and the metrics
written, so a run that fails at start leaves nothing behind.
"""

from __future__ import annotations

import datetime
import logging
import math
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vjepa_cli.config._load import dump_yaml
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import is_disk_full, write_text_atomic
from vjepa_cli.io.checkpoint import load_state, save_state
from vjepa_cli.train.rundir import CheckpointStore, RunDir, disk_full, disk_full_is_clear
from vjepa_cli.train.runlog import RunLog
from vjepa_cli.train.sharding import (
    full_optimizer_state,
    full_state_dict,
    load_full_optimizer_state,
    load_full_state_dict,
)

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)


@dataclass
class StepOutput:
    """What `train_step` returns (subclasses add their own fields)."""

    loss: float  # the step's loss, the same on every process
    stop: bool = False  # every process agreed to stop after this step (a signal one of them received)


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and returns. A second SIGINT aborts."""

    def __init__(self):
        self.set, self._old = False, {}

    def _handle(self, signum, frame):
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set = True
        log.warning("%s received: finishing this step, then writing a checkpoint", signal.Signals(signum).name)

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Trainer:
    """Models, optimizer, sampler, loss scaler, RNG and run log of one run, and its loop (see the module doc).

    Args:
        acc: the `accelerate.Accelerator` placing the run (device, processes, mixed precision, fp16 scaler).
        models: {name: module} as checkpoints name them (the unwrapped modules; their order is the file's).
        optimizer: over the models' parameters; `accelerate()` swaps in Accelerate's wrapper of it.
        config: the run's recipe, written to `config.yaml`.
        folder: the run folder, entered; `store`: where its checkpoints go; `runlog`: its records.
        sampler: a data sampler with `load_state_dict({"step": micro-batches drawn})`, or None when the data
            drawn is a function of (seed, step) alone.
        micro_batches: micro-batches per optimizer step (`grad_accum`).
        sharded: the models are FSDP-sharded (every process gathers for a checkpoint).
    """

    nan_hint = "lower the learning rate, then --resume"
    steps_key = "steps"  # the recipe key of the run's length, for the "already at step" hint

    def __init__(self, acc: Accelerator, models: dict[str, nn.Module], optimizer: torch.optim.Optimizer, *,
                 config: Any, folder: RunDir, store: CheckpointStore, runlog: RunLog, checkpoint_every: int,
                 sampler: Any = None, micro_batches: int = 1, sharded: bool = False):
        self.acc, self.models, self.optimizer = acc, models, optimizer
        self.config, self.folder, self.store, self.runlog = config, folder, store, runlog
        self.checkpoint_every, self.sampler = checkpoint_every, sampler
        self.micro_batches, self.sharded = micro_batches, sharded
        self.step = 0  # optimizer steps done
        self.start_step = 0  # the step this call started from (a resumed checkpoint's, or 0)
        self.end = 0  # the step `train()` stops at
        self.resumed = False
        self.last_checkpoint: Path | None = None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly:

        - `step`: optimizer steps done;
        - `models`: {name: whole state dict}, e.g. encoder, predictor and the EMA target encoder;
        - `optimizer`: the whole optimizer state (moments, step counts, hyperparameters);
        - `sampler`: {"step": micro-batches drawn}, or None without a stateful sampler;
        - `scaler`: the fp16 loss scaler's state, or None without fp16;
        - `rng`: {"cpu": generator state, "cuda": [one per GPU]};
        - the run log's entries (`failures`: bad video reads); the metrics file's position is `step`.

        Under FSDP every process must call it (tensors are gathered, a collective); only the main one gets
        the tensors.
        """
        keep = self.acc.is_main_process
        return {
            "step": self.step,
            "models": {name: full_state_dict(m, keep) for name, m in self.models.items()},
            "optimizer": full_optimizer_state(self.optimizer, keep),
            "sampler": None if self.sampler is None else {"step": self.step * self.micro_batches},
            "scaler": None if self.acc.scaler is None else self.acc.scaler.state_dict(),
            "rng": rng_state(),
            **self.runlog.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put a `state_dict()` back (whole tensors into their shards under FSDP). A part that does not fit is a
        ValueError naming it. The sampler's position is the step's: a loader prefetches ahead of the trainer,
        and `grad_accum` (micro-batches per step) may change on resume."""
        self.step = self.start_step = int(state["step"])
        for name, module in self.models.items():
            try:
                load_full_state_dict(module, state["models"].get(name, {}))
            except RuntimeError as e:
                raise ValueError(f"the {name} weights do not fit the model: {_first_line(e)}") from None
        try:
            load_full_optimizer_state(self.optimizer, state["optimizer"])
        except (KeyError, ValueError, RuntimeError) as e:
            raise ValueError(f"the optimizer state does not fit: {e}") from None
        if self.sampler is not None:
            self.sampler.load_state_dict({"step": self.step * self.micro_batches})
        if state.get("scaler") and self.acc.scaler is not None:
            self.acc.scaler.load_state_dict(state["scaler"])
        if state.get("rng"):
            set_rng_state(state["rng"])
        self.runlog.load_state_dict(state)
        self.resumed = True

    def load(self, path: Path) -> None:
        """Continue from the checkpoint at `path`; one of another run (`check_checkpoint`) is a VjepaError."""
        state = load_state(path)
        self.check_checkpoint(state, path)
        try:
            self.load_state_dict(state)
        except ValueError as e:
            raise VjepaError(f"{path}: {e}") from None
        self.last_checkpoint = path

    def check_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        """Refuse (VjepaError) a checkpoint this run cannot continue from; subclasses know what to compare."""

    def checkpoint_meta(self) -> dict[str, Any]:
        """What checkpoints record about the run besides the state (config, architecture, ...)."""
        return {}

    def prepare(self, end: int) -> None:
        """Ready to train to step `end`, after `load`; subclasses wrap their models here (`accelerate`)."""
        if self.step >= end:
            raise VjepaError(f"the run is already at step {self.step} of {end}",
                             hint=f"raise {self.steps_key} (--set {self.steps_key}=N) to go on")
        self.end = end

    def accelerate(self, model: nn.Module) -> nn.Module:
        """`model` and the optimizer wrapped by Accelerate (device, DDP, mixed precision); the optimizer's state
        is loaded first, as Accelerate expects."""
        model, self.optimizer = self.acc.prepare(model, self.optimizer)
        return model

    def train_step(self, stop: StopFlag) -> StepOutput:
        """One optimizer step (at `self.step`, not yet counted); `stop.set` says a signal asked to stop."""
        raise NotImplementedError

    def log_step(self, out: StepOutput) -> None:
        """Record the step just done (`self.step` counts it)."""

    def train(self, on_step: Callable[[StepOutput], None] | None = None) -> bool:
        """Step to `self.end`; True when a signal stopped the run early (after its step and a checkpoint)."""
        try:
            with StopFlag() as stop:
                while self.step < self.end:
                    out = self.train_step(stop)
                    self.step += 1
                    if not self.folder.committed:
                        self._commit()
                    self.log_step(out)
                    if on_step is not None:
                        on_step(out)
                    stop_now = out.stop or (self.acc.num_processes == 1 and stop.set)  # many: agreed in the step
                    if self.step % self.checkpoint_every == 0 or self.step == self.end or stop_now:
                        self.checkpoint()
                    if stop_now:
                        return True
            return False
        except OSError as e:  # the metrics, say: checkpoints and the model file say their own path
            if not is_disk_full(e):
                raise
            raise disk_full(e.filename or self.folder.path, self.last_checkpoint) from None
        finally:
            self.runlog.close()

    def _commit(self) -> None:
        """After the run's first step the folder holds a run: its config, and its metrics from here on."""
        self.folder.commit()
        if self.acc.is_main_process:
            write_text_atomic(self.folder.path / "config.yaml", dump_yaml(self.config))
        self.runlog.open(self.start_step if self.resumed else None)

    def checkpoint(self) -> Path:
        """Write the state after `self.step` steps (the main process writes; under FSDP all help gather)."""
        path = self.store.path(self.step)
        main = self.acc.is_main_process
        if main or self.sharded:
            state = {**self.state_dict(), "created": _now(), **self.checkpoint_meta()}
            if main:
                with disk_full_is_clear(path, self.last_checkpoint):
                    save_state(path, state)
                    self.store.saved(path)
        self.acc.wait_for_everyone()
        self.last_checkpoint = path
        return path

    def check_finite(self, loss: float) -> None:
        """A non-finite loss ends the run before the weights are updated, naming the last good checkpoint."""
        if math.isfinite(loss):
            return
        self.optimizer.zero_grad(set_to_none=True)
        where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else ""
        raise VjepaError(f"the loss became {loss} at step {self.step + 1}; stopped before updating the "
                         f"weights{where}", hint=self.nan_hint)


def rng_state() -> dict[str, Any]:
    """The CPU generator's state and, where CUDA is in use, each GPU's."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {"cpu": torch.get_rng_state(), "cuda": list(torch.cuda.get_rng_state_all()) if cuda else []}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore `rng_state()`'s (GPU states only onto as many GPUs as they were taken on)."""
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
