"""Architecture of the encoder and predictor (what a model file records in its metadata)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# Official sizes (jepa / vjepa2 `vision_transformer.py`): name -> (embed_dim, depth, num_heads, mlp_ratio).
ARCHS: dict[str, tuple[int, int, int, float]] = {
    "vit_tiny": (192, 12, 3, 4.0),
    "vit_small": (384, 12, 6, 4.0),
    "vit_base": (768, 12, 12, 4.0),
    "vit_large": (1024, 24, 16, 4.0),
    "vit_huge": (1280, 32, 16, 4.0),
    "vit_giant": (1408, 40, 16, 48 / 11),
    "vit_giant_xformers": (1408, 40, 22, 48 / 11),  # the released V-JEPA 2 ViT-g
}


@dataclass(frozen=True)
class ModelConfig:
    """Encoder + predictor architecture. `arch` picks a preset; the four size fields override it."""

    arch: str = "vit_small"  # preset name, one of ARCHS
    embed_dim: int | None = None  # encoder width D (None = preset)
    depth: int | None = None  # encoder blocks (None = preset)
    num_heads: int | None = None  # encoder attention heads (None = preset)
    mlp_ratio: float | None = None  # MLP hidden = int(D * mlp_ratio) (None = preset)
    in_chans: int = 3  # input channels
    patch_size: int = 16  # spatial patch side, pixels
    tubelet_size: int = 2  # temporal patch length, frames
    num_frames: int = 16  # frames per clip the position table is built for
    img_size: int = 224  # crop side the position table is built for (sin-cos); RoPE takes the input's grid
    pos_embed: Literal["sincos", "rope"] = "sincos"  # V-JEPA 1 fixed 3D sin-cos, or V-JEPA 2 3D RoPE
    uniform_power: bool = True  # sin-cos: equal dims per axis (every official config sets this)
    qkv_bias: bool = True  # bias on the fused qkv projection
    drop_path_rate: float = 0.0  # stochastic depth, linear ramp over blocks
    checkpointing: bool = False  # activation checkpointing in the blocks (saves memory, costs compute)
    pred_embed_dim: int = 384  # predictor width
    pred_depth: int = 12  # predictor blocks
    pred_num_heads: int | None = None  # predictor heads (None = encoder's, as in V-JEPA 1; V-JEPA 2 uses 12)
    pred_num_mask_tokens: int = 2  # learned mask tokens, picked by mask_index (V-JEPA 1: one per mask type)
    pred_sort_tokens: bool | None = None  # sort context+target tokens by position (None = True for rope, as V-JEPA 2)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch '{self.arch}'; valid: {', '.join(ARCHS)}")
        for name in ("in_chans", "patch_size", "tubelet_size", "num_frames", "img_size", "pred_embed_dim", "pred_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.num_frames % self.tubelet_size and self.num_frames != 1:
            raise ValueError("num_frames must be a multiple of tubelet_size")
        if self.img_size % self.patch_size:
            raise ValueError("img_size must be a multiple of patch_size")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError("drop_path_rate must be in [0, 1)")
        if self.pred_num_mask_tokens < 1:
            raise ValueError("pred_num_mask_tokens must be >= 1")
        r = self.resolved_sizes()
        if min(r[0], r[2], self.pred_heads) < 1:  # checked before they divide
            raise ValueError("embed_dim, num_heads and pred_num_heads must be >= 1")
        if r[0] % r[2]:
            raise ValueError(f"embed_dim {r[0]} is not divisible by num_heads {r[2]}")
        if self.pred_embed_dim % self.pred_heads:
            raise ValueError(f"pred_embed_dim {self.pred_embed_dim} is not divisible by pred_num_heads {self.pred_heads}")

    def resolved_sizes(self) -> tuple[int, int, int, float]:
        d, L, h, m = ARCHS[self.arch]
        return (
            self.embed_dim if self.embed_dim is not None else d,
            self.depth if self.depth is not None else L,
            self.num_heads if self.num_heads is not None else h,
            self.mlp_ratio if self.mlp_ratio is not None else m,
        )

    @property
    def pred_heads(self) -> int:
        return self.pred_num_heads if self.pred_num_heads is not None else self.resolved_sizes()[2]

    @property
    def sort_tokens(self) -> bool:
        return self.pred_sort_tokens if self.pred_sort_tokens is not None else self.pos_embed == "rope"

    def resolve(self) -> ModelConfig:
        """A copy with every None filled in, so the record does not depend on preset tables."""
        d, L, h, m = self.resolved_sizes()
        return replace(
            self, embed_dim=d, depth=L, num_heads=h, mlp_ratio=m,
            pred_num_heads=self.pred_heads, pred_sort_tokens=self.sort_tokens,
        )

    def grid(self, frames: int | None = None, size: int | tuple[int, int] | None = None) -> tuple[int, int, int]:
        """Token grid (T', H', W') for an input of `frames` x `size` (defaults: the config's)."""
        frames = self.num_frames if frames is None else frames
        size = self.img_size if size is None else size
        h, w = (size, size) if isinstance(size, int) else size
        return max(1, frames // self.tubelet_size), h // self.patch_size, w // self.patch_size


@dataclass(frozen=True)
class ACPredictorConfig:
    """Architecture of the action-conditioned predictor."""

    embed_dim: int = 192  # encoder feature width D (input and output)
    pred_embed_dim: int = 256  # predictor width Dp
    depth: int = 4  # predictor blocks
    num_heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden = Dp * mlp_ratio
    action_dim: int = 2  # A
    state_dim: int = 0  # S (0 = no state tokens)
    grid: tuple[int, int] = (8, 8)  # patch grid (H', W') of one frame
    max_frames: int = 16  # longest sequence (learned positions only)
    pos: Literal["rope", "learned"] = "rope"  # 3D RoPE (V-JEPA 2) or learned per-token embeddings
    extrinsics_dim: int = 0  # E: inputs of an `extrinsics_encoder` (0 = none; the official 2-AC stores a 6-d one)
    use_extrinsics: bool = False  # add an extrinsics token after the state (official switch; off when released)

    def __post_init__(self):
        for name in ("embed_dim", "pred_embed_dim", "depth", "num_heads", "action_dim", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.state_dim < 0 or self.extrinsics_dim < 0 or min(self.grid) < 1:
            raise ValueError("state_dim and extrinsics_dim must be >= 0 and grid sides >= 1")
        if self.use_extrinsics and not self.extrinsics_dim:
            raise ValueError("use_extrinsics needs extrinsics_dim >= 1")
        if self.pred_embed_dim % self.num_heads:
            raise ValueError("pred_embed_dim must be divisible by num_heads")
        if self.pos == "rope" and (self.pred_embed_dim // self.num_heads) // 3 < 2:
            raise ValueError("RoPE needs a head dim of at least 6 (two per axis)")

    @property
    def cond_tokens(self) -> int:
        """Conditioning tokens per step: the action, then the state and extrinsics when used."""
        return 1 + (self.state_dim > 0) + self.use_extrinsics

    @property
    def tokens_per_frame(self) -> int:
        return self.cond_tokens + self.grid[0] * self.grid[1]
