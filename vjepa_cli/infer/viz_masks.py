"""`vjepa viz-masks RECIPE`: draw the (context, target) masks a pretraining recipe samples, over a clip, so a
user sees what the model is asked to predict (multi-block 3D masks of V-JEPA, Bardes et al. 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_cli.errors import VjepaError


def recipe_masking(recipe: str | Path, sets: Sequence[str] = ()) -> tuple[Any, Any, int, int, int]:
    """(MaskConfig, ModelConfig, frames per clip, crop size, seed) of a pretraining recipe."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig

    cfg = load_recipe(PretrainConfig, recipe, sets)
    return cfg.mask, cfg.model, cfg.data.frames_per_clip, cfg.data.crop_size, cfg.seed


def demo_clip(frames: int, size: int, seed: int = 0) -> np.ndarray:
    """A simple uint8 `(T, S, S, 3)` clip (textured background, a moving disc) to draw masks on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([96 + 80 * xx / size, 96 + 80 * yy / size, np.full_like(xx, 150.0)], axis=-1)
    base += ((xx // max(1, size // 8) + yy // max(1, size // 8)) % 2)[..., None] * 25
    out = np.empty((frames, size, size, 3), np.uint8)
    x0, y0 = rng.uniform(0.2, 0.4, 2) * size
    for t in range(frames):
        img = base.copy()
        cx, cy = x0 + t * size * 0.4 / max(1, frames), y0 + t * size * 0.3 / max(1, frames)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < (size * 0.12) ** 2] = (250, 230, 60)
        out[t] = np.clip(img, 0, 255)
    return out


def run_viz_masks(recipe: str | Path, output: str | Path, sets: Sequence[str] = (), video: str | Path | None = None,
                  samples: int = 1, seed: int | None = None) -> dict:
    """Sample `samples` batches of masks from the recipe's generator(s) and draw them (first clip of each)."""
    from vjepa_cli.data.masks import MaskCollator
    from vjepa_cli.data.media import write_png
    from vjepa_cli.infer.viz import draw_masks

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise VjepaError(f"cannot write {output.name}", hint="-o must end in .png")
    if samples < 1:
        raise VjepaError("--samples must be >= 1")
    mask_cfg, model_cfg, frames, size, recipe_seed = recipe_masking(recipe, sets)
    grid = model_cfg.grid(frames, size)
    try:
        collator = MaskCollator(mask_cfg, grid, recipe_seed if seed is None else seed)
    except ValueError as e:
        raise VjepaError(f"{recipe}: cannot build its masks: {e}") from None
    clip = _video_clip(video, frames, size) if video is not None else demo_clip(frames, size)
    pairs, labels = [], []
    n_tok = grid[0] * grid[1] * grid[2]
    for s in range(samples):
        ctx, tgt = collator.masks(s, 1)
        for m, (c, t) in enumerate(zip(ctx, tgt, strict=True)):
            pairs.append((c[0].numpy(), t[0].numpy()))
            labels.append(f"step {s} mask {m}: context {c.shape[1] / n_tok:.0%}, target {t.shape[1] / n_tok:.0%}")
    scale = max(1, 128 // size)
    big = clip.repeat(scale, 1).repeat(scale, 2)
    img = draw_masks(big, grid, model_cfg.patch_size * scale, model_cfg.tubelet_size, pairs, labels)
    write_png(output, img)
    return {"output": str(output), "masks": len(pairs), "grid": list(grid), "labels": labels}


def _video_clip(video: str | Path, frames: int, size: int) -> np.ndarray:
    from vjepa_cli.config.extract import WindowConfig
    from vjepa_cli.data.media import Crop, iter_windows

    crop = Crop(*WindowConfig(frames=frames, size=size).crop_for(size))  # the frozen-model commands' crop
    for w in iter_windows(video, frames, frame_step=1, crop=crop):
        return w.frames[0]  # (T, S, S, 3)
    raise VjepaError(f"{video}: no frames decoded")
