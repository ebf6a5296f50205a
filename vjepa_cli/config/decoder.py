"""Feature-decoder recipe (`vjepa decoder train`): the decoder's architecture and kind, the videos and frozen
encoder it learns from, and the optimisation. Defaults train the tiny models at 64 px on CPU in minutes.

Example recipe (`vjepa decoder train --model model.safetensors --data synth:physics -o decoder.safetensors`)::

    decoder: {kind: regression, width: 192, depth: 4}
    data: {source: synth:physics, clips: 512, frames: 8}
    optim: {steps: 600, batch_size: 16, lr: 1.0e-3}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DECODER_KINDS = ("regression", "generative")


@dataclass(frozen=True)
class DecoderArchConfig:
    """The decoder's own choices; the encoder fixes the rest (feature width, patch, tubelet, frame size)."""

    kind: Literal["regression", "generative"] = "regression"  # L1 regression, or conditional flow matching
    width: int = 128  # transformer width
    depth: int = 3  # transformer blocks over the tokens of one time step
    num_heads: int = 4  # attention heads
    refine_channels: int = 16  # channels of the 3x3 convolutional refinement over whole frames (0 = none)
    sample_steps: int = 8  # generative: Euler steps of the flow ODE from noise to frames
    grad_weight: float = 0.0  # regression: weight of the image-gradient L1 term (0 = plain L1; see README)

    def __post_init__(self):
        if self.kind not in DECODER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(DECODER_KINDS)}")
        if min(self.width, self.depth, self.num_heads, self.sample_steps) < 1 or self.refine_channels < 0:
            raise ValueError("width, depth, num_heads and sample_steps must be >= 1, refine_channels >= 0")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.grad_weight < 0:
            raise ValueError("grad_weight must be >= 0")


@dataclass(frozen=True)
class DecoderDataConfig:
    """The videos the decoder learns from: clips are cut once, encoded once, and kept in memory."""

    source: str = "synth:physics"  # manifest CSV, folder with train.csv, wm episodes folder, or synth:<task>
    synth_videos: int = 256  # videos generated for synth:<task> (cached, like pretraining's)
    synth_seed: int = 0  # seed of the generated videos
    clips: int = 512  # training clips drawn from the videos
    frames: int = 8  # frames per clip (a multiple of the encoder's tubelet; a world model's clips are 1 frame)
    batch_size: int = 32  # clips per encoder forward when caching features

    def __post_init__(self):
        if self.clips < 1 or self.frames < 1 or self.synth_videos < 2 or self.batch_size < 1:
            raise ValueError("clips, frames and batch_size must be >= 1, synth_videos >= 2")


@dataclass(frozen=True)
class DecoderOptimConfig:
    """AdamW with a linear warmup and a cosine decay."""

    steps: int = 400  # optimizer steps
    batch_size: int = 16  # clips per step
    lr: float = 1.0e-3  # peak learning rate
    final_lr: float = 1.0e-5  # at the last step
    warmup_steps: int = 30  # linear warmup from lr / 10
    weight_decay: float = 0.01  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm (0 = none)
    mixed_precision: Literal["no", "auto", "fp32", "bf16", "fp16"] = "no"  # autocast; auto = bf16 on CUDA; fp32 = no

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ValueError("steps and batch_size must be >= 1, warmup_steps >= 0")
        if self.lr <= 0 or self.final_lr < 0:
            raise ValueError("lr must be > 0, final_lr >= 0")


@dataclass(frozen=True)
class DecoderTrainConfig:
    """A whole decoder run. `model` and `data.source` usually come from the command line."""

    model: str = ""  # model file whose (EMA target) encoder gives the features
    decoder: DecoderArchConfig = field(default_factory=DecoderArchConfig)
    data: DecoderDataConfig = field(default_factory=DecoderDataConfig)
    optim: DecoderOptimConfig = field(default_factory=DecoderOptimConfig)
    seed: int = 0  # init, clip choice, batches and noise
    device: str = ""  # cpu, cuda, cuda:N ("" = cuda when available)
    checkpoint_every: int = 200  # steps between checkpoints
    log_every: int = 10  # steps between metrics.jsonl lines

    def __post_init__(self):
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every and log_every must be >= 1")


@dataclass(frozen=True)
class FeatureDecoderConfig:
    """The decoder's whole architecture: its choices (`DecoderArchConfig`) and what the encoder fixes."""

    kind: Literal["regression", "generative"] = "regression"  # see DecoderArchConfig
    embed_dim: int = 192  # encoder feature width D
    patch_size: int = 16  # encoder patch side, pixels
    tubelet_size: int = 2  # encoder tubelet, frames
    img_size: int = 64  # frame side the decoder draws, pixels
    width: int = 128  # see DecoderArchConfig
    depth: int = 3
    num_heads: int = 4
    refine_channels: int = 16
    sample_steps: int = 8

    def __post_init__(self):
        if self.kind not in DECODER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(DECODER_KINDS)}")
        if min(self.embed_dim, self.patch_size, self.tubelet_size, self.width, self.depth, self.num_heads,
               self.sample_steps) < 1 or self.refine_channels < 0:
            raise ValueError("sizes must be >= 1")
        if self.img_size % self.patch_size or self.width % self.num_heads:
            raise ValueError("img_size must be a multiple of patch_size, width of num_heads")

    @classmethod
    def for_encoder(cls, arch: DecoderArchConfig, *, embed_dim: int, patch_size: int, tubelet_size: int,
                    img_size: int) -> FeatureDecoderConfig:
        """The architecture of `arch`'s choices for an encoder of this width, patch, tubelet and frame size."""
        return cls(kind=arch.kind, embed_dim=embed_dim, patch_size=patch_size, tubelet_size=tubelet_size,
                   img_size=img_size, width=arch.width, depth=arch.depth, num_heads=arch.num_heads,
                   refine_channels=arch.refine_channels, sample_steps=arch.sample_steps)
