"""Fixtures for the probe tests: a tiny model file and tiny labelled videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_model(path: Path) -> Path:
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.models.load import build_models, save_model_file

    cfg = ModelConfig(arch="vit_tiny", embed_dim=32, depth=2, num_heads=2, num_frames=4, img_size=32,
                      pred_embed_dim=16, pred_depth=1, pred_num_heads=2)
    enc, pred = build_models(cfg, True)
    return save_model_file(path, enc, pred, cfg, {"test": True})


def colour_video(path: Path, label: int, seed: int, frames: int = 8) -> Path:
    """A 64x32 clip whose dominant channel is the label (trivially separable by colour)."""
    from vjepa_cli.data.media import write_video

    rng = np.random.default_rng(seed)
    f = rng.integers(0, 40, (frames, 32, 64, 3)).astype(np.uint8)
    f[..., label % 3] = 200
    return write_video(path, f, 8)


def colour_manifests(root: Path, n_train: int = 12, n_val: int = 6, classes: int = 2) -> tuple[Path, Path]:
    from vjepa_cli.data.manifest import ManifestRow, write_manifest

    rows = [ManifestRow(str(colour_video(root / f"v{i}.mp4", i % classes, i)), i % classes) for i in range(n_train + n_val)]
    return write_manifest(root / "train.csv", rows[:n_train]), write_manifest(root / "val.csv", rows[n_train:])


TINY_SETS = ["data.frames=4", "data.frame_step=2", "data.resolution=32", "data.views=1", "data.segments=1",
             "probe.kind=attentive", "probe.depth=1", "probe.num_heads=2", "optim.epochs=4", "optim.batch_size=4",
             "optim.lrs=[1.0e-2,1.0e-3]", "optim.wds=[0.01]"]
