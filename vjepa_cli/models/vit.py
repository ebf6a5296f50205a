"""The V-JEPA video encoder: a ViT over spatio-temporal tubelets.

V-JEPA: Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from Video" (2024);
V-JEPA 2: Assran et al., "V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and Planning"
(2025); V-JEPA 2.1: Mur-Labadia et al., "V-JEPA 2.1: Unlocking Dense Features in Video Self-Supervised Learning"
(2026). State-dict names match the official checkpoints (`patch_embed.proj`, `pos_embed`, `blocks.{i}.*`, `norm`;
2.1: `patch_embed_img.proj`, `img_mod_embed`, `video_mod_embed`, `norms_block.{k}`), so converted weights load
with `strict=True`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.layers import (
    LN_EPS,
    Block,
    PatchEmbed3D,
    init_modality,
    init_weights,
    rescale_blocks,
    run_blocks,
)
from vjepa_cli.models.packed import Packed, packed_ids, packed_rope
from vjepa_cli.models.pos_embed import RopeTable, interpolate_sincos, sincos_3d


def gather_tokens(x: Tensor, ids: Tensor) -> Tensor:
    """x (B, N, D), ids (B, K) -> (B, K, D): the tokens at `ids` (an index view, no (B, K, D) index copy)."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def apply_masks(x: Tensor, masks: list[Tensor]) -> Tensor:
    """Keep the tokens of each mask and stack the results along batch: (B, N, D) -> (len(masks) * B, K, D).

    Every mask must be a LongTensor (B, K) of token ids to keep, with the same K.
    """
    if not masks:
        raise ValueError("masks is an empty list; pass None to encode every token")
    ks = {int(m.shape[1]) for m in masks}
    if len(ks) != 1:
        raise ValueError(
            f"masks keep different token counts {sorted(ks)}; call the encoder once per mask "
            "(as the official multi-mask wrapper does) or truncate them to one length"
        )
    if len(masks) == 1:
        return gather_tokens(x, masks[0])
    return torch.cat([gather_tokens(x, m) for m in masks], dim=0)


class VisionTransformer(nn.Module):
    """Video ViT encoder built from a `ModelConfig`.

    Input is float (B, C, T, H, W) normalised pixels, or an image (B, C, H, W) / a clip with T=1. A V-JEPA 2.1
    encoder (`cfg.image_embed`) reads T=1 through its image embedder (one token per patch, T'=1); otherwise the
    frame is repeated to the tubelet length. The token grid (T', H', W') is read from the input, so other
    resolutions, non-square frames and other clip lengths work: sin-cos tables are resampled trilinearly, RoPE
    angles come from the token positions.
    """

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        dim, depth, heads, mlp_ratio = cfg.resolved_sizes()
        self.embed_dim, self.num_heads = dim, heads
        self.patch_size, self.tubelet_size = cfg.patch_size, cfg.tubelet_size
        self.use_rope = cfg.pos_embed == "rope"
        self.levels = tuple(cfg.levels)  # V-JEPA 2.1 hierarchical levels (block indices), () for V-JEPA 1/2
        self.patch_embed = PatchEmbed3D(cfg.in_chans, dim, cfg.patch_size, cfg.tubelet_size)
        self.patch_embed_img = PatchEmbed3D(cfg.in_chans, dim, cfg.patch_size, 1) if cfg.image_embed else None
        if cfg.modality_embed:  # added to every token right after the patch embedding
            self.img_mod_embed = nn.Parameter(torch.zeros(1, 1, dim))
            self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, dim))
        self.grid = cfg.grid()  # the grid the sin-cos table is built for
        if not self.use_rope:
            table = sincos_3d(dim, self.grid, cfg.uniform_power).unsqueeze(0)  # (1, N, D)
            self.register_buffer("pos_embed", table, persistent=True)
        rates = torch.linspace(0, cfg.drop_path_rate, depth, device="cpu").tolist()  # cpu: works under a meta device
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, cfg.qkv_bias, drop_path=rates[i], use_rope=self.use_rope)
            for i in range(depth)
        )
        if self.levels:  # one LayerNorm per level; the last one is the final norm
            self.norms_block = nn.ModuleList(nn.LayerNorm(dim, eps=LN_EPS) for _ in self.levels)
        else:
            self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        init_weights(self, generator=generator)
        rescale_blocks(self.blocks)
        if cfg.modality_embed:
            init_modality(self, generator)

    def token_grid(self, x: Tensor) -> tuple[int, int, int]:
        """(T', H', W') of an input (B, C, T, H, W) or (B, C, H, W): T' = 1 for an image (one frame), whether the
        image embedder reads it (2.1) or it is repeated to one tubelet."""
        h, w = x.shape[-2:]
        t = 1 if x.dim() == 4 else x.shape[2]
        tub = 1 if t == 1 else self.tubelet_size
        return t // tub, h // self.patch_size, w // self.patch_size

    def reads_image(self, x: Tensor) -> bool:
        """Whether a prepared input goes through the image embedder (2.1: a one-frame input)."""
        return self.patch_embed_img is not None and x.shape[2] == 1

    def _prepare(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(2)  # image -> one-frame clip
        if x.dim() != 5:
            raise ValueError(f"expected input (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
        t, h, w = x.shape[-3:]
        if t == 1 and self.patch_embed_img is not None:
            tub = 1
        elif t == 1 and self.tubelet_size > 1:
            x = x.expand(-1, -1, self.tubelet_size, -1, -1)  # an image is repeated to a tubelet
            t = tub = self.tubelet_size
        else:
            tub = self.tubelet_size
        if t % tub or h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"input T x H x W = {t} x {h} x {w} must be multiples of the tubelet {tub} and the patch "
                f"{self.patch_size}"
            )
        return x

    def _embed(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """Patch embedding (+ modality vector, + sin-cos table): (B, C, T, H, W) -> (B, N, D)."""
        image = self.reads_image(x)
        x = (self.patch_embed_img if image else self.patch_embed)(x)  # (B, N, D)
        if self.cfg.modality_embed:
            x = x + (self.img_mod_embed if image else self.video_mod_embed)
        if not self.use_rope:
            x = x + interpolate_sincos(self.pos_embed, self.grid, grid)
        return x

    def _rope(self, ids: Tensor, grid: tuple[int, int, int]) -> RopeTable:
        return RopeTable.from_ids(ids, grid, self.embed_dim // self.num_heads, interleaved=self.cfg.rope_interleaved,
                                  interp_grid=self.cfg.rope_interp_grid)

    def forward_features(
        self, x: Tensor, masks: list[Tensor] | None = None, return_layers: list[int] | None = None,
        hierarchical: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode a clip.

        Args:
            x: (B, C, T, H, W) or (B, C, H, W) normalised pixels.
            masks: optional list of LongTensor (B, K) token ids to keep (id = t*H'*W' + h*W' + w), all with
                the same K. They are applied after the patch embedding (+ sin-cos) and before the blocks; the
                masked batches are stacked along batch and encoded in one pass.
            return_layers: block indices (negative allowed) whose outputs (before the final norm) to return too.
            hierarchical: (V-JEPA 2.1) return every level's normed output, concatenated shallow to deep along
                the width: (B, N, L*D), whose last D channels are the default output.

        Returns:
            (B, N, D) (or (B, N, L*D) hierarchical), or (len(masks) * B, K, .) with masks; with `return_layers`,
            the tuple `(output, [hidden after each listed block])`.
        """
        if hierarchical and not self.levels:
            raise VjepaError("this encoder has no hierarchical levels (a V-JEPA 1/2 model): call it without "
                             "hierarchical=True")
        x = self._prepare(x)
        grid = self.token_grid(x)
        x = self._embed(x, grid)  # (B, N, D)
        if isinstance(masks, Tensor):
            masks = [masks]
        rope = None
        if masks is not None:
            x = apply_masks(x, masks)  # (M*B, K, D)
            if self.use_rope:
                rope = self._rope(masks[0] if len(masks) == 1 else torch.cat(masks, dim=0), grid)
        elif self.use_rope:
            rope = self._rope(torch.arange(x.shape[1], device=x.device), grid)
        taps = list(self.levels[:-1]) if hierarchical else []  # the last level is the final output
        x, hidden = run_blocks(self.blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training,
                               return_layers=taps + list(return_layers or []))
        if hierarchical:
            outs = [norm(h) for norm, h in zip(self.norms_block, [*hidden[:len(taps)], x], strict=True)]
            x, hidden = torch.cat(outs, dim=-1), hidden[len(taps):]  # (B, N, L*D)
        else:
            x = self.norms_block[-1](x) if self.levels else self.norm(x)
        return x if return_layers is None else (x, hidden)

    def forward(self, x: Tensor, masks: list[Tensor] | None = None, hierarchical: bool = False,
                split: bool = False) -> Tensor | list[Tensor]:
        """Same as `forward_features(x, masks, hierarchical=...)`: (B, N, D) / (B, N, L*D), or (M*B, K, .).

        `split=True`: the masks may keep different token counts; the tokens of every mask are encoded in one pass
        (packed, see `packed.py`) and returned per mask, [(B, K_i, D or L*D)]: the outputs of one pass per mask,
        up to float rounding.
        """
        if split:
            return self.forward_split(x, masks, hierarchical)
        return self.forward_features(x, masks, hierarchical=hierarchical)

    def forward_split(self, x: Tensor, masks: list[Tensor], hierarchical: bool = False) -> list[Tensor]:
        """Encode the tokens of each mask (B, K_i) of `x`, all in one pass -> [(B, K_i, D or L*D)]."""
        if hierarchical and not self.levels:
            raise VjepaError("this encoder has no hierarchical levels (a V-JEPA 1/2 model): call it without "
                             "hierarchical=True")
        if not masks:
            raise ValueError("split=True needs a non-empty list of masks")
        x = self._prepare(x)
        grid = self.token_grid(x)
        x = self._embed(x, grid)  # (B, N, D)
        b, n, d = x.shape
        layout = Packed.of(masks)
        rows = packed_ids(layout, masks, n)  # (S,) into the B*N tokens
        x = x.reshape(b * n, d).index_select(0, rows)  # (S, D)
        rope = packed_rope(self._rope(layout.pack(masks), grid)) if self.use_rope else None
        taps = list(self.levels[:-1]) if hierarchical else []
        x, hidden = run_blocks(self.blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training,
                               return_layers=taps, layout=layout)
        if hierarchical:
            x = torch.cat([norm(h) for norm, h in zip(self.norms_block, [*hidden, x], strict=True)], dim=-1)
        else:
            x = self.norms_block[-1](x) if self.levels else self.norm(x)
        return layout.unpack(x)

