"""`run_pretrain`: the V-JEPA pretraining loop (Bardes et al. 2024; Assran et al. 2025, V-JEPA 2).

Accelerate places the models (one CPU, one GPU, or DDP over many processes launched by `torchrun` /
`accelerate launch`; with `distributed.strategy: fsdp` the models are sharded per block instead, see
`vjepa_cli.train.sharding`). Everything random is a function of (seed, step): weights from the seed, clips and
masks from (seed, step, index), dropout from a per-step reseed, so `--resume` continues an interrupted run exactly
(bit for bit on CPU) and N processes reproduce one process at the same global batch. The step is
`PretrainTrainer`'s (`vjepa_cli.train.pretrainer`); the loop, state and checkpoints are the `Trainer`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import StepCheckpoints
from vjepa_cli.runtime import mixed_precision
from vjepa_cli.train.accel import make_accelerator
from vjepa_cli.train.pretrainer import PretrainTrainer
from vjepa_cli.train.pretrainer21 import Pretrain21Trainer
from vjepa_cli.train.rundir import RunDir, resume_point

log = logging.getLogger(__name__)


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


def _accelerator(cfg: PretrainConfig):
    from accelerate import DistributedDataParallelKwargs

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise VjepaError("device: cuda was asked for but no CUDA GPU is visible", hint="set device: auto or cpu")
    device = torch.device("cpu" if cfg.device == "cpu" or not cuda else "cuda")
    mp = mixed_precision(cfg.dtype, device)
    unused = cfg.mask.num_masks < cfg.model.pred_num_mask_tokens  # some mask tokens get no gradient
    unused = unused or cfg.objective.images is not None  # each rank reads one modality: the other's embedder idles
    kwargs = [DistributedDataParallelKwargs(find_unused_parameters=unused)]
    return make_accelerator(device, mp, kwargs_handlers=kwargs), "fp32" if mp == "no" else mp


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
    out = Path(output_dir or cfg.output_dir or Path("runs") / name)
    acc, dtype = _accelerator(cfg)
    if cfg.distributed.strategy == "fsdp" and acc.num_processes == 1:
        log.info("distributed.strategy fsdp with one process: nothing to shard, training unsharded")
    with RunDir(out, main=acc.is_main_process) as folder:  # locked; left as found if no step runs
        store = StepCheckpoints(out / "checkpoints", cfg.keep_last)
        latest = resume_point(store, out, resume)
        acc.wait_for_everyone()
        trainer = (Pretrain21Trainer if cfg.objective.active else PretrainTrainer)(cfg, acc, dtype, folder, store, name, init=latest is None)
        if latest is not None:
            trainer.load(latest)
        trainer.prepare(min(cfg.steps, stop_at) if stop_at is not None else cfg.steps)
        if on_start is not None:
            on_start(trainer.layout())
        t_run = time.perf_counter()
        stopped = trainer.train(None if on_step is None else lambda s: on_step(
            StepInfo(trainer.step, cfg.steps, s.loss, s.vals.lr, trainer.clips_per_s)))
        interrupted = stopped or trainer.step < cfg.steps
        model_path, curve = trainer.finish(interrupted)
    seconds, done = time.perf_counter() - t_run, trainer.step - trainer.start_step
    return PretrainResult(
        output_dir=out, start_step=trainer.start_step, step=trainer.step, steps=cfg.steps,
        final_loss=trainer.last_loss, checkpoint=trainer.last_checkpoint, model_path=model_path, loss_curve=curve,
        interrupted=interrupted, global_batch=trainer.global_batch, world_size=acc.num_processes, seconds=seconds,
        clips_per_s=done * trainer.global_batch / max(seconds, 1e-9), bad_videos=trainer.runlog.failures.count,
        warnings=trainer.runlog.warnings,
    )
