"""The frozen encoder of a world model and the features it gives episode frames.

As in V-JEPA 2-AC (Assran et al., 2025, sec. 3.1), every frame is encoded on its own (repeated to the
tubelet length by the encoder) and the patch tokens are layer-normed. Training caches these features on
disk once per episode (`train/wm_data.py`), so the encoder never runs in the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.config.wm import WMEncoderConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import stable_hash

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation every V-JEPA encoder was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FrozenEncoder:
    """An encoder in eval mode without gradients, with what is needed to record and reproduce it."""

    module: torch.nn.Module  # the ViT; forward (B, C, T, H, W) -> (B, N, D)
    config: ModelConfig  # its architecture
    source: dict[str, Any]  # provenance: {"kind": "random", "seed": s} or {"kind": "file", "path": ...}

    @property
    def key(self) -> str:
        """Short hash naming the feature cache of this encoder."""
        return stable_hash({"cfg": to_dict(self.config), "src": self.source}, 12)

    @property
    def grid(self) -> tuple[int, int]:
        _, h, w = self.config.grid(frames=self.config.tubelet_size)
        return h, w


def load_frozen_encoder(cfg: WMEncoderConfig, device: torch.device | str) -> FrozenEncoder:
    """The encoder of the model file `cfg.path`, or a random one of `cfg.model` drawn with `cfg.seed`."""
    if cfg.path:
        from vjepa_cli import load_model

        path = Path(cfg.path)
        loaded = load_model(path, device=device)
        if getattr(loaded, "encoder", None) is None:
            raise VjepaError(f"{path} holds no encoder")
        mcfg = loaded.config if isinstance(loaded.config, ModelConfig) else cfg.model
        st = path.stat()
        source = {"kind": "file", "path": str(path.resolve()), "size": st.st_size, "mtime": int(st.st_mtime)}
        module = loaded.encoder
    else:
        from vjepa_cli.models import build_encoder

        mcfg = cfg.model
        module = build_encoder(mcfg, generator=torch.Generator().manual_seed(cfg.seed))
        source = {"kind": "random", "seed": cfg.seed}
    module = module.to(device).eval().requires_grad_(False)
    return FrozenEncoder(module, mcfg, source)


def preprocess(frames: np.ndarray, size: int, device: torch.device | str) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> normalised float [T, 3, 1, size, size] (one-frame clips)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).unsqueeze(2)


@torch.no_grad()
def encode_frames(enc: FrozenEncoder, frames: np.ndarray, batch_size: int = 64) -> torch.Tensor:
    """Encode every frame on its own -> layer-normed patch features [T, N, D] (on the encoder's device)."""
    device = next(enc.module.parameters()).device
    out = []
    for i in range(0, len(frames), batch_size):
        x = preprocess(frames[i:i + batch_size], enc.config.img_size, device)  # (b, 3, 1, S, S)
        z = enc.module(x)  # (b, N, D); the encoder repeats a 1-frame clip to its tubelet
        out.append(F.layer_norm(z, (z.shape[-1],)))
    return torch.cat(out).float()
