"""Fixtures shared by the extract / surprise / viz / export tests: index-coded videos and tiny model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config.model import ModelConfig

TINY = dict(arch="vit_tiny", embed_dim=48, depth=2, num_heads=2, img_size=32, patch_size=16, num_frames=8,
            pred_embed_dim=32, pred_depth=1, pred_num_heads=2)


def tiny_config(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


def write_index_video(path: Path, n: int, fps: float = 10, w: int = 64, h: int = 48) -> Path:
    """Frame i is a flat grey of value 6*i (i < 43): decoded pixels tell which source frame was read."""
    from vjepa_cli.data.media import write_video

    frames = np.stack([np.full((h, w, 3), 6 * i, np.uint8) for i in range(n)])
    return write_video(path, frames, fps, crf=0, keyint=10)


def frame_ids(window_frames: np.ndarray) -> np.ndarray:
    """Source indices of a decoded index-coded window `(T, S, S, 3)`."""
    return np.round(window_frames[:, 8, 8, 0].astype(float) / 6).astype(int)


def save_tiny_model(path: Path, cfg: ModelConfig | None = None, seed: int = 0, predictor: bool = True) -> Path:
    from vjepa_cli.models import build_encoder, build_predictor
    from vjepa_cli.models.load import save_model_file

    cfg = cfg or tiny_config()
    g = torch.Generator().manual_seed(seed)
    enc = build_encoder(cfg, g)
    pred = build_predictor(cfg, g) if predictor else None
    with torch.no_grad():  # move LayerNorm/bias params off 1/0 so every parameter matters
        for p in list(enc.parameters()) + (list(pred.parameters()) if pred is not None else []):
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return save_model_file(path, enc, pred, cfg, {"source": "test"})
