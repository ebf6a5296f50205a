"""A feature decoder: frozen V-JEPA patch features (layer-normed, as the predictor's targets are) back to the
frames of their tubelet, so that predictions can be looked at.

The tokens of one time step (H' x W' patches of one tubelet) are decoded together by a small pre-norm
transformer (the encoder's blocks, `layers.Block`, with a 2-D sin-cos position table) whose per-token head
writes the tubelet's pixels (as the MAE decoder does, He et al. 2022), then a 3x3 convolution pair refines each
whole frame (patch seams). Time steps are decoded independently, so any clip length and any subset of time
steps (a predicted future) decodes.

Two kinds behind one interface (`decode`, `sample`, `loss`):
- `regression`: the network maps features to frames, trained with L1 (+ optional image-gradient L1);
  deterministic; it draws the mean of what the features leave open (blur where they are uncertain).
- `generative`: conditional flow matching (rectified flow; Lipman et al. 2023, Liu et al. 2023): the network
  is a velocity field v(x_t, t | features) trained on x_t = (1 - t) noise + t frames with target
  frames - noise; sampling integrates dx/dt = v from noise (t = 0) to frames (t = 1) in a few Euler steps, and
  different noise gives different plausible frames for one prediction.

Pixels are handled in [-1, 1] inside; `decode` / `sample` return float frames in [0, 1], `(B, T, H, W, 3)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa_cli.config._load import from_dict, to_dict
from vjepa_cli.config.decoder import FeatureDecoderConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.layers import LN_EPS, Block, init_weights
from vjepa_cli.models.pos_embed import sincos_1d, sincos_3d

FORMAT = "vjepa-decoder/1"


def euler_flow(velocity: Callable[[Tensor, Tensor], Tensor], x0: Tensor, steps: int) -> Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 in `steps` Euler steps; t is passed as (B,)."""
    x, dt = x0, 1.0 / steps
    for k in range(steps):
        t = torch.full((x.shape[0],), k * dt, device=x.device, dtype=x.dtype)
        x = x + dt * velocity(x, t)
    return x


def image_gradient_l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean |d/dx a - d/dx b| + |d/dy a - d/dy b| over frames `(..., H, W)` (finite differences)."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


class FeatureDecoder(nn.Module):
    """Features `(B, T'*H'*W', D)` -> frames `(B, T'*tubelet, H, W, 3)`; see the module doc."""

    def __init__(self, cfg: FeatureDecoderConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        c, w = cfg, cfg.width
        self.hw = (c.img_size // c.patch_size) ** 2  # tokens per time step
        self.pix = c.tubelet_size * c.patch_size ** 2 * 3  # pixels one token draws
        self.feat_in = nn.Sequential(nn.LayerNorm(c.embed_dim, eps=LN_EPS), nn.Linear(c.embed_dim, w))
        side = c.img_size // c.patch_size
        self.register_buffer("pos", sincos_3d(w, (1, side, side)), persistent=False)  # (hw, W)
        self.generative = c.kind == "generative"
        if self.generative:
            self.pix_in = nn.Linear(self.pix, w)
            self.time = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(Block(w, c.num_heads) for _ in range(c.depth))
        self.norm = nn.LayerNorm(w, eps=LN_EPS)
        self.head = nn.Linear(w, self.pix)
        self.refine = None
        if c.refine_channels:
            cin = 6 if self.generative else 3
            self.refine = nn.Sequential(nn.Conv2d(cin, c.refine_channels, 3, padding=1), nn.GELU(),
                                        nn.Conv2d(c.refine_channels, 3, 3, padding=1))
        init_weights(self, generator=generator)
        if self.refine is not None:
            nn.init.zeros_(self.refine[-1].weight)  # the refinement starts as the identity

    # --- layout -------------------------------------------------------------------------------------------
    def steps_of(self, features: Tensor) -> Tensor:
        """`(B, T'*hw, D)` -> `(B*T', hw, D)`, checking the width and the token count."""
        b, n, d = features.shape
        if d != self.cfg.embed_dim:
            raise VjepaError(f"the decoder reads features of width {self.cfg.embed_dim}, got {d}")
        if n % self.hw:
            raise VjepaError(f"{n} tokens are not whole time steps of {self.hw} patches")
        return features.reshape(b * (n // self.hw), self.hw, d)

    def patchify(self, frames: Tensor) -> Tensor:
        """`(B', tub, H, W, 3)` -> `(B', hw, tub*p*p*3)`, tokens in raster order as the encoder's."""
        b, t, h, w, _ = frames.shape
        p = self.cfg.patch_size
        x = frames.reshape(b, t, h // p, p, w // p, p, 3).permute(0, 2, 4, 1, 3, 5, 6)  # (B', H', W', t, p, p, 3)
        return x.reshape(b, (h // p) * (w // p), self.pix)

    def unpatchify(self, tokens: Tensor) -> Tensor:
        """Inverse of `patchify`: `(B', hw, tub*p*p*3)` -> `(B', tub, H, W, 3)`."""
        b = tokens.shape[0]
        p, t, side = self.cfg.patch_size, self.cfg.tubelet_size, self.cfg.img_size // self.cfg.patch_size
        x = tokens.reshape(b, side, side, t, p, p, 3).permute(0, 3, 1, 4, 2, 5, 6)  # (B', t, H', p, W', p, 3)
        return x.reshape(b, t, side * p, side * p, 3)

    # --- network ------------------------------------------------------------------------------------------
    def net(self, feats: Tensor, x_t: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """One time step's features `(B', hw, D)` (+ noisy frames `(B', tub, H, W, 3)` and times `(B',)` when
        generative) -> frames or velocity `(B', tub, H, W, 3)`, in [-1, 1] units."""
        z = self.feat_in(feats) + self.pos  # (B', hw, W)
        if self.generative:
            temb = sincos_1d(self.cfg.width, t.float() * 1000).to(z.dtype)  # (B', W)
            z = z + self.pix_in(self.patchify(x_t)) + self.time(temb).unsqueeze(1)
        for blk in self.blocks:
            z = blk(z)
        out = self.unpatchify(self.head(self.norm(z)))  # (B', tub, H, W, 3)
        if self.refine is None:
            return out
        b, tub, h, w, _ = out.shape
        img = out.reshape(b * tub, h, w, 3).permute(0, 3, 1, 2)  # (B'*tub, 3, H, W)
        if self.generative:
            img = torch.cat([img, x_t.reshape(b * tub, h, w, 3).permute(0, 3, 1, 2)], dim=1)
        res = self.refine(img).permute(0, 2, 3, 1).reshape(b, tub, h, w, 3)
        return out + res

    def _frames(self, steps: Tensor, batch: int) -> Tensor:
        """`(B*T', tub, H, W, 3)` in [-1, 1] -> `(B, T'*tub, H, W, 3)` in [0, 1]."""
        out = steps.reshape(batch, -1, *steps.shape[2:])
        return ((out.float() + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def decode(self, features: Tensor, generator: torch.Generator | None = None, steps: int | None = None) -> Tensor:
        """Features `(B, T'*H'*W', D)` -> frames `(B, T'*tubelet, H, W, 3)` in [0, 1] (one sample when generative,
        its noise drawn from `generator`)."""
        return self.sample(features, 1, generator, steps)[0]

    @torch.no_grad()
    def sample(self, features: Tensor, num_samples: int = 1, generator: torch.Generator | None = None,
               steps: int | None = None) -> Tensor:
        """`num_samples` decodings of each clip -> `(S, B, T, H, W, 3)` in [0, 1]; regression repeats its one."""
        b = features.shape[0]
        f = self.steps_of(features)  # (B*T', hw, D)
        if not self.generative:
            return self._frames(self.net(f), b).unsqueeze(0).expand(num_samples, *([-1] * 4 + [-1]))
        shape = (f.shape[0], self.cfg.tubelet_size, self.cfg.img_size, self.cfg.img_size, 3)
        outs = []
        for _ in range(num_samples):
            x0 = torch.randn(shape, generator=generator, device="cpu").to(f.device, f.dtype)
            x1 = euler_flow(lambda x, t: self.net(f, x, t), x0, steps or self.cfg.sample_steps)
            outs.append(self._frames(x1, b))
        return torch.stack(outs)

    def loss(self, features: Tensor, frames: Tensor, generator: torch.Generator | None = None,
             grad_weight: float = 0.0) -> Tensor:
        """Training loss of features `(B, N, D)` against their frames `(B, T, H, W, 3)` in [0, 1]: L1
        (+ `grad_weight` x gradient L1) for regression, the flow-matching MSE for generative. Noise and times
        come from `generator` (CPU), so a step is a function of its batch and generator."""
        f = self.steps_of(features)  # (B*T', hw, D)
        x1 = frames.reshape(f.shape[0], self.cfg.tubelet_size, *frames.shape[2:]) * 2 - 1  # (B*T', tub, H, W, 3)
        if not self.generative:
            out = self.net(f)
            loss = (out - x1).abs().mean()
            if grad_weight > 0:
                loss = loss + grad_weight * image_gradient_l1(out.movedim(-1, -3), x1.movedim(-1, -3))
            return loss
        x0 = torch.randn(x1.shape, generator=generator).to(x1.device, x1.dtype)
        t = torch.rand(x1.shape[0], generator=generator).to(x1.device, x1.dtype)
        tb = t.view(-1, 1, 1, 1, 1)
        v = self.net(f, (1 - tb) * x0 + tb * x1, t)
        return F.mse_loss(v, x1 - x0)

    def forward(self, features: Tensor, frames: Tensor, generator: torch.Generator | None = None,
                grad_weight: float = 0.0) -> Tensor:
        """The training loss (`loss`), so that a DDP wrapper sees one forward per backward."""
        return self.loss(features, frames, generator, grad_weight)


def save_decoder(path: str | Path, decoder: FeatureDecoder, meta: dict[str, Any]) -> Path:
    """Write the decoder file atomically: `decoder.*` weights, `format`, `decoder_config` and `meta`."""
    from vjepa_cli.io.tensors import save_tensors

    tensors = {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
    return save_tensors(path, tensors, {"format": FORMAT, "decoder_config": to_dict(decoder.cfg), **meta})


def load_decoder(path: str | Path, device: torch.device | str = "cpu") -> FeatureDecoder:
    """Read a decoder file strictly (eval mode, no gradients); anything else is one clear VjepaError.
    The file's metadata is kept as `decoder.meta`."""
    from vjepa_cli.io.tensors import load_tensors, meta_json

    path = Path(path)
    tensors, meta = load_tensors(path, device="cpu")
    if meta.get("format") != FORMAT:
        raise VjepaError(f"{path} is not a decoder file (format {meta.get('format')!r})",
                         "train one with `vjepa decoder train --model M --data D -o decoder.safetensors`")
    cfg = from_dict(FeatureDecoderConfig, meta_json(meta, "decoder_config"), f"{path} decoder_config")
    dec = FeatureDecoder(cfg)
    sd = {k.removeprefix("decoder."): v for k, v in tensors.items() if k.startswith("decoder.")}
    try:
        dec.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise VjepaError(f"{path}: weights do not match the decoder config: {str(e).splitlines()[0]}") from None
    dec.meta = {k: meta_json(meta, k) for k in meta}
    return dec.to(device).eval().requires_grad_(False)


def check_decoder_fits(decoder: FeatureDecoder, embed_dim: int, patch_size: int, tubelet_size: int,
                       img_size: int, decoder_path: str | Path, model_path: str | Path) -> None:
    """One clear line when `decoder` was trained for an encoder of another width, patch, tubelet or frame size."""
    c = decoder.cfg
    want = {"width": embed_dim, "patch": patch_size, "tubelet": tubelet_size, "frame size": img_size}
    have = {"width": c.embed_dim, "patch": c.patch_size, "tubelet": c.tubelet_size, "frame size": c.img_size}
    bad = [k for k in want if want[k] != have[k]]
    if bad:
        k = bad[0]
        raise VjepaError(f"{decoder_path} decodes features of an encoder with {k} {have[k]}, but {model_path} "
                         f"has {k} {want[k]}", hint="train a decoder for this model with `vjepa decoder train`")
