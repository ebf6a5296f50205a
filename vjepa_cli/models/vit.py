"""The V-JEPA video encoder: a ViT over spatio-temporal tubelets.

V-JEPA: Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from Video" (2024);
V-JEPA 2: Assran et al., "V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and Planning"
(2025). State-dict names match the official checkpoints (`patch_embed.proj`, `pos_embed`, `blocks.{i}.*`,
`norm`), so converted weights load with `strict=True`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.models.layers import LN_EPS, Block, PatchEmbed3D, init_weights, rescale_blocks, run_blocks
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

    Input is float (B, C, T, H, W) normalised pixels, or an image (B, C, H, W) / a clip with T=1, which is
    repeated to the tubelet length. The token grid (T', H', W') is read from the input, so other resolutions,
    non-square frames and other clip lengths work: sin-cos tables are resampled trilinearly, RoPE angles come
    from the token positions.
    """

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        dim, depth, heads, mlp_ratio = cfg.resolved_sizes()
        self.embed_dim, self.num_heads = dim, heads
        self.patch_size, self.tubelet_size = cfg.patch_size, cfg.tubelet_size
        self.use_rope = cfg.pos_embed == "rope"
        self.patch_embed = PatchEmbed3D(cfg.in_chans, dim, cfg.patch_size, cfg.tubelet_size)
        self.grid = cfg.grid()  # the grid the sin-cos table is built for
        if not self.use_rope:
            table = sincos_3d(dim, self.grid, cfg.uniform_power).unsqueeze(0)  # (1, N, D)
            self.register_buffer("pos_embed", table, persistent=True)
        rates = torch.linspace(0, cfg.drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, cfg.qkv_bias, drop_path=rates[i], use_rope=self.use_rope)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        init_weights(self, generator=generator)
        rescale_blocks(self.blocks)

    def token_grid(self, x: Tensor) -> tuple[int, int, int]:
        """(T', H', W') of an input (B, C, T, H, W) after image repetition."""
        t, h, w = x.shape[-3:]
        return t // self.tubelet_size, h // self.patch_size, w // self.patch_size

    def _prepare(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(2)  # image -> one-frame clip
        if x.dim() != 5:
            raise ValueError(f"expected input (B, C, T, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
        t, h, w = x.shape[-3:]
        if t == 1 and self.tubelet_size > 1:
            x = x.expand(-1, -1, self.tubelet_size, -1, -1)  # an image is repeated to a tubelet
            t = self.tubelet_size
        if t % self.tubelet_size or h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"input T x H x W = {t} x {h} x {w} must be multiples of the tubelet {self.tubelet_size} "
                f"and the patch {self.patch_size}"
            )
        return x

    def forward_features(
        self, x: Tensor, masks: list[Tensor] | None = None, return_layers: list[int] | None = None
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode a clip.

        Args:
            x: (B, C, T, H, W) or (B, C, H, W) normalised pixels.
            masks: optional list of LongTensor (B, K) token ids to keep (id = t*H'*W' + h*W' + w), all with
                the same K. They are applied after the patch embedding (+ sin-cos) and before the blocks; the
                masked batches are stacked along batch and encoded in one pass.
            return_layers: block indices (negative allowed) whose outputs (before the final norm) to return too.

        Returns:
            (B, N, D), or (len(masks) * B, K, D) with masks; with `return_layers`, the tuple
            `(output, [hidden after each listed block])`.
        """
        x = self._prepare(x)
        grid = self.token_grid(x)
        x = self.patch_embed(x)  # (B, N, D)
        if not self.use_rope:
            x = x + interpolate_sincos(self.pos_embed, self.grid, grid)
        if isinstance(masks, Tensor):
            masks = [masks]
        rope = None
        if masks is not None:
            x = apply_masks(x, masks)  # (M*B, K, D)
            if self.use_rope:
                ids = masks[0] if len(masks) == 1 else torch.cat(masks, dim=0)
                rope = RopeTable.from_ids(ids, grid, self.embed_dim // self.num_heads)
        elif self.use_rope:
            ids = torch.arange(x.shape[1], device=x.device)
            rope = RopeTable.from_ids(ids, grid, self.embed_dim // self.num_heads)
        x, hidden = run_blocks(
            self.blocks, x, rope, checkpointing=self.cfg.checkpointing and self.training, return_layers=return_layers
        )
        x = self.norm(x)
        return x if return_layers is None else (x, hidden)

    def forward(self, x: Tensor, masks: list[Tensor] | None = None) -> Tensor:
        """Same as `forward_features(x, masks)`: (B, N, D), or (len(masks) * B, K, D)."""
        return self.forward_features(x, masks)
