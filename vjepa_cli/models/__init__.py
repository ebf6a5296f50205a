"""V-JEPA networks: the video ViT encoder, the JEPA predictor, probe heads and shared layers.

`build_encoder(cfg)` / `build_predictor(cfg)` take a `ModelConfig` (or a preset name from `ARCHS`).
"""

from __future__ import annotations

import torch

from vjepa_cli.config.model import ARCHS, ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.predictor import Predictor
from vjepa_cli.models.vit import VisionTransformer, apply_masks

__all__ = [
    "ARCHS", "Predictor", "VisionTransformer", "apply_masks", "build_encoder", "build_predictor", "list_archs",
    "model_config",
]


def list_archs() -> list[str]:
    """Names of the encoder presets."""
    return list(ARCHS)


def model_config(cfg: ModelConfig | str) -> ModelConfig:
    """A `ModelConfig` from a config or a preset name; an unknown name raises `VjepaError` listing the valid ones."""
    if isinstance(cfg, ModelConfig):
        return cfg
    if cfg not in ARCHS:
        raise VjepaError(f"unknown architecture '{cfg}'", hint=f"valid: {', '.join(ARCHS)}")
    return ModelConfig(arch=cfg)


def build_encoder(cfg: ModelConfig | str, generator: torch.Generator | None = None) -> VisionTransformer:
    """The encoder for `cfg`, initialised as upstream (drawn from `generator` when given)."""
    return VisionTransformer(model_config(cfg), generator=generator)


def build_predictor(cfg: ModelConfig | str, generator: torch.Generator | None = None) -> Predictor:
    """The predictor for `cfg`, initialised as upstream (mask tokens zero)."""
    return Predictor(model_config(cfg), generator=generator)
