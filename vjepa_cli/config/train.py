"""Pretraining configuration: optimisation (`OptimConfig`) and the whole run (`PretrainConfig`).

Defaults are the official V-JEPA 1 ViT-L recipe (Bardes et al. 2024, `configs/pretrain/vitl16.yaml`) with every
length counted in optimizer steps: 300 epochs x 300 iterations = 90k steps, warmup 40 epochs = 12k steps.

Example recipe::

    model: {arch: vit_base, pos_embed: rope}
    mask: {kind: multiblock}
    data: {datasets: [k400/train.csv], frames_per_clip: 16, crop_size: 224}
    optim: {lr: 6.25e-4, start_lr: 2.0e-4, warmup_steps: 12000, schedule: cosine}
    steps: 90000
    batch_size: 24
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa_cli.config.data import DataConfig
from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.config.objective import ObjectiveConfig, check_objective


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, schedules, EMA and the loss."""

    lr: float = 6.25e-4  # peak learning rate (reached after warmup)
    start_lr: float = 2.0e-4  # learning rate at step 0
    final_lr: float = 1.0e-6  # learning rate at the end of the (ipe_scale-stretched) decay
    warmup_steps: int = 12000  # linear warmup length, steps
    schedule: Literal["cosine", "constant", "wsd"] = "cosine"  # after warmup: cosine decay, constant, or
    # constant then linear anneal over the last anneal_steps (warmup-stable-decay, V-JEPA 2 cooldown)
    anneal_steps: int = 0  # wsd: length of the final linear decay, steps
    weight_decay: float = 0.04  # weight decay at step 0 (biases and 1-D parameters get none)
    final_weight_decay: float = 0.4  # weight decay at the end (cosine schedule; equal = constant)
    ema: tuple[float, float] = (0.998, 1.0)  # target-encoder momentum (start, end)
    ema_schedule: Literal["linear", "constant"] = "linear"  # linear start -> end, or constant = ema[0]
    ipe_scale: float = 1.25  # schedules are laid out over ipe_scale x steps, so they stop at 1 / ipe_scale
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    eps: float = 1.0e-8  # AdamW epsilon
    clip_grad: float | None = 10.0  # max gradient norm (None = no clipping, as in V-JEPA 2)
    loss_exp: float = 1.0  # loss = mean |z - h| ** loss_exp / loss_exp (1 = L1)
    reg_coeff: float = 0.0  # weight of the variance/covariance anti-collapse term on predictions (0 = off)

    def __post_init__(self):
        for name in ("lr", "start_lr", "final_lr", "weight_decay", "final_weight_decay", "eps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.warmup_steps < 0 or self.anneal_steps < 0:
            raise ValueError("warmup_steps and anneal_steps must be >= 0")
        if self.schedule == "wsd" and self.anneal_steps == 0:
            raise ValueError("schedule 'wsd' needs anneal_steps > 0")
        if not all(0.0 <= m <= 1.0 for m in self.ema):
            raise ValueError("ema momenta must be in [0, 1]")
        if self.ipe_scale < 1.0:
            raise ValueError("ipe_scale must be >= 1 (1 = schedules end exactly at the last step)")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError("betas must be in [0, 1)")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError("clip_grad must be > 0 (or null for no clipping)")
        if self.loss_exp <= 0 or self.reg_coeff < 0:
            raise ValueError("loss_exp must be > 0 and reg_coeff >= 0")


@dataclass(frozen=True)
class DistributedConfig:
    """How several processes (torchrun / accelerate launch) share the work; one process ignores it."""

    strategy: Literal["ddp", "fsdp"] = "ddp"  # ddp: every process holds the whole model; fsdp: weights, gradients
    # and optimizer state are sharded over the processes per transformer block (FSDP2), for the largest models
    reshard_after_forward: bool = True  # fsdp: free each block's gathered weights after its forward and gather
    # them again for backward (least memory); false keeps them until backward (fewer all-gathers, more memory)


@dataclass(frozen=True)
class PretrainConfig:
    """A whole pretraining run: model, masks, data, optimisation and the loop."""

    model: ModelConfig = field(default_factory=ModelConfig)  # encoder + predictor architecture
    mask: MaskConfig = field(default_factory=MaskConfig)  # masks drawn for every batch
    data: DataConfig = field(default_factory=DataConfig)  # videos, clip sampling, augmentation, loader workers
    optim: OptimConfig = field(default_factory=OptimConfig)  # AdamW, schedules, EMA, loss
    steps: int = 90000  # optimizer steps to train
    batch_size: int = 24  # clips per device per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (global batch = batch_size x grad_accum x devices)
    seed: int = 0  # seeds weights, masks, sampling and augmentation
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # autocast dtype; auto = bf16 on CUDA, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = CUDA when available
    compile: bool = False  # torch.compile the encoder and predictor (for CUDA; on CPU it measured 4x slower)
    mask_batching: Literal["packed", "per_mask"] = field(default="packed", metadata={"omit_default": True})
    # packed: one encoder and one predictor pass for all mask pairs of a batch (tokens of masks of different lengths
    # packed into one matrix); per_mask: one pass per mask pair, as the official code. Same results up to rounding
    checkpoint_every: int = 1000  # write a checkpoint every N steps (and always at the end)
    keep_last: int = 3  # checkpoints kept (older ones are deleted; the latest is always kept)
    log_every: int = 10  # steps between metrics.jsonl records and collapse checks
    collapse_std: float = 0.05  # warn when the target-feature std falls below this
    output_dir: str | None = None  # default: runs/<recipe name>
    tensorboard: bool = False  # also write TensorBoard event files (the same as log_with: [tensorboard])
    log_with: tuple[str, ...] = ()  # experiment trackers next to metrics.jsonl: tensorboard, wandb, mlflow, aim
    init_from: str | None = None  # start from these weights (a checkpoint or model file), e.g. for a cooldown
    distributed: DistributedConfig = field(default_factory=DistributedConfig)  # ddp (default) or fsdp sharding
    objective: ObjectiveConfig = field(default=ObjectiveConfig(), metadata={"omit_default": True})  # V-JEPA 2.1
    # loss options (hierarchical targets, dense context loss, image batches); all off = V-JEPA 1/2

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "checkpoint_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.collapse_std < 0:
            raise ValueError("collapse_std must be >= 0")
        if self.distributed.strategy == "fsdp" and self.dtype == "fp16":
            raise ValueError("distributed.strategy fsdp trains in fp32 or bf16, not fp16 (set dtype: bf16 or auto)")
        check_objective(self.objective, self.model)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') of a training clip."""
        return self.model.grid(self.data.frames_per_clip, self.data.crop_size)
