"""Architecture of the encoder and predictor (what a model file records in its metadata).

V-JEPA 1 (sin-cos positions), V-JEPA 2 (RoPE) and V-JEPA 2.1 (Mur-Labadia et al., 2026: RoPE with interleaved
frequencies and rescaled positions, an image patch embedder, modality vectors, four per-level norms, a multi-level
predictor with a context head) are options of one `ModelConfig`; the 2.1 fields default to "off", so V-JEPA 1/2
configs and the files that record them are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Literal

# Official sizes (jepa / vjepa2 `vision_transformer.py`): name -> (embed_dim, depth, num_heads, mlp_ratio).
ARCHS: dict[str, tuple[int, int, int, float]] = {
    "vit_tiny": (192, 12, 3, 4.0),
    "vit_small": (384, 12, 6, 4.0),
    "vit_base": (768, 12, 12, 4.0),
    "vit_large": (1024, 24, 16, 4.0),
    "vit_huge": (1280, 32, 16, 4.0),
    "vit_giant": (1408, 40, 16, 48 / 11),
    "vit_giant_xformers": (1408, 40, 22, 48 / 11),  # the released V-JEPA 2 / 2.1 ViT-g (1B)
    "vit_gigantic_xformers": (1664, 48, 26, 64 / 13),  # the released V-JEPA 2.1 ViT-G (2B): MLP 8192
}

# V-JEPA 2.1 levels (0-based blocks whose outputs get their own LayerNorm), as the official encoder fixes them.
OFFICIAL_LEVELS: dict[int, tuple[int, ...]] = {12: (2, 5, 8, 11), 24: (5, 11, 17, 23), 40: (9, 19, 29, 39),
                                               48: (11, 23, 37, 47)}
# Options that only V-JEPA 2.1 models set: at their defaults `to_dict` leaves them out, so the records (model-file
# metadata, checkpoints, config hashes) of V-JEPA 1/2 configs stay as they were, readable by earlier versions.
V21 = {"omit_default": True, "since": "2.1"}


def default_levels(depth: int, n: int = 4) -> tuple[int, ...]:
    """The `n` level blocks of a depth-`depth` encoder: the official table (n = 4), else evenly spaced, ending
    with the last block (an extension: the official code supports depths 12, 24, 40 and 48 only)."""
    if n == 4 and depth in OFFICIAL_LEVELS:
        return OFFICIAL_LEVELS[depth]
    if not 1 <= n <= depth:
        raise ValueError(f"cannot place {n} levels in {depth} blocks")
    return tuple((k + 1) * depth // n - 1 for k in range(n))


def rope_pretrain_grid(patch_size: int) -> int:
    """Side of the 2.1 pretraining grid that interpolated RoPE positions are mapped onto: 256 px / patch (16 for
    patch 16; 18 for patch 14, as the official int(252 / 14))."""
    return 256 // patch_size


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
    # V-JEPA 2.1 options (all off for V-JEPA 1/2; left out of records while off, see V21):
    rope_interleaved: bool = field(default=False, metadata=V21)  # RoPE channel i turns by w_(i//2), not w_(i mod S/2)
    rope_interp_grid: int = field(default=0, metadata=V21)  # map h, w positions onto 0..g-1 (2.1: 16); 0 = raw ids
    pred_rope_interp_grid: int = field(default=0, metadata=V21)  # the same in the predictor (0 when released)
    image_embed: bool = field(default=False, metadata=V21)  # `patch_embed_img` (temporal kernel 1) reads T=1 input
    modality_embed: bool = field(default=False, metadata=V21)  # image / video vectors added to every token
    levels: tuple[int, ...] = field(default=(), metadata=V21)  # blocks with their own LayerNorm; () = one `norm`
    pred_levels: int = field(default=1, metadata=V21)  # encoder levels the predictor reads and predicts (g/G: 4)
    pred_out_dim: int | None = field(default=None, metadata=V21)  # width per predicted level (None = D; B/L: 1664)
    pred_context_head: bool = field(default=False, metadata=V21)  # also predict the context tokens

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
        self._check_v21(r[1])

    def _check_v21(self, depth: int) -> None:
        rope_only = self.rope_interleaved or self.rope_interp_grid or self.pred_rope_interp_grid
        if rope_only and self.pos_embed != "rope":
            raise ValueError("rope_interleaved / rope_interp_grid / pred_rope_interp_grid need pos_embed 'rope'")
        if min(self.rope_interp_grid, self.pred_rope_interp_grid) < 0:
            raise ValueError("rope_interp_grid and pred_rope_interp_grid must be >= 0 (0 = off)")
        lv = self.levels
        if lv and (list(lv) != sorted(set(lv)) or lv[0] < 0 or lv[-1] != depth - 1):
            raise ValueError(f"levels {list(lv)} must be increasing block indices ending with the last block "
                             f"({depth - 1})")
        if self.pred_levels < 1 or (self.pred_levels > 1 and self.pred_levels != len(lv)):
            raise ValueError(f"pred_levels must be 1 or the number of encoder levels ({len(lv)}), "
                             f"got {self.pred_levels}")
        if self.pred_out_dim is not None and self.pred_out_dim < 1:
            raise ValueError("pred_out_dim must be >= 1")

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
    def generation(self) -> str:
        """"1" (sin-cos), "2" (RoPE) or "2.1" (any V-JEPA 2.1 option set): for display."""
        if any(getattr(self, f.name) != f.default for f in fields(self) if f.metadata.get("since") == "2.1"):
            return "2.1"
        return "2" if self.pos_embed == "rope" else "1"

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


V21_FIELDS = tuple(f.name for f in fields(ModelConfig) if f.metadata.get("since") == "2.1")

# The released V-JEPA 2.1 models (file stem -> encoder preset, predictor depth, predictor levels, width of each
# predicted level; None = the encoder's). B and L predict the 1664-wide features of the ViT-G they are distilled from.
V21_RELEASES: dict[str, tuple[str, int, int, int | None]] = {
    "vjepa2_1_vitb_dist_vitG_384": ("vit_base", 12, 1, 1664),
    "vjepa2_1_vitl_dist_vitG_384": ("vit_large", 12, 1, 1664),
    "vjepa2_1_vitg_384": ("vit_giant_xformers", 24, 4, None),
    "vjepa2_1_vitG_384": ("vit_gigantic_xformers", 24, 4, None),
}


def v21_release(name: str) -> ModelConfig:
    """The architecture of a released V-JEPA 2.1 model as the official hub builds it: 384 px, 64 frames,
    interpolated RoPE in the encoder only, 8 mask tokens, a 384-wide 12-head predictor with a context head."""
    if name not in V21_RELEASES:
        raise ValueError(f"unknown V-JEPA 2.1 release '{name}'; valid: {', '.join(V21_RELEASES)}")
    arch, pred_depth, pred_levels, out_dim = V21_RELEASES[name]
    depth = ARCHS[arch][1]
    return ModelConfig(
        arch=arch, img_size=384, num_frames=64, pos_embed="rope", pred_embed_dim=384, pred_depth=pred_depth,
        pred_num_heads=12, pred_num_mask_tokens=8, rope_interleaved=True, rope_interp_grid=rope_pretrain_grid(16),
        image_embed=True, modality_embed=True, levels=default_levels(depth), pred_levels=pred_levels,
        pred_out_dim=out_dim, pred_context_head=True,
    ).resolve()


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
    # actions are mapped from [action_low, action_high] to [-1, 1] before the action encoder; () = as given
    # (the official models, and world models written before): a Linear + LayerNorm keeps little of an action
    # hundreds of units wide (PushT's targets in a 512 px arena) but its direction
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    # the state token's output also predicts the next state (as DINO-WM predicts proprioception), which an
    # autoregressive rollout feeds back instead of holding the last observed state; states go in and come out
    # standardised by state_mean / state_std (the training episodes'; () = as given, the official models)
    predict_states: bool = False
    state_mean: tuple[float, ...] = ()
    state_std: tuple[float, ...] = ()
    # which entries of the recorded state vector the state tokens read, in order (() = all of it, state_dim long):
    # e.g. an agent's own position but not an object's pose (proprioception only)
    state_dims: tuple[int, ...] = ()

    def __post_init__(self):
        if self.predict_states and not self.state_dim:
            raise ValueError("predict_states needs state tokens (state_dim >= 1)")
        if len(self.state_mean) != len(self.state_std) or (self.state_mean and len(self.state_mean) != self.state_dim):
            raise ValueError("state_mean and state_std need one value per state dimension, or none")
        if any(sd <= 0 for sd in self.state_std):
            raise ValueError("every state_std must be > 0")
        if self.state_dims and (len(self.state_dims) != self.state_dim or min(self.state_dims) < 0
                                or len(set(self.state_dims)) != len(self.state_dims)):
            raise ValueError("state_dims must name state_dim distinct entries of the state vector, or none")
        if len(self.action_low) != len(self.action_high) or (self.action_low and len(self.action_low) != self.action_dim):
            raise ValueError("action_low and action_high need one value per action dimension, or none")
        if any(lo >= hi for lo, hi in zip(self.action_low, self.action_high, strict=True)):
            raise ValueError("every action_low must be < its action_high")
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
