"""The small public Python API over `vjepa extract`: `extract_features` (videos, windows exactly as the command
cuts them) and `embed_images` (still images or arrays, one frame each: the 2.1 image path, or a repeated frame).

    import vjepa_cli
    model = vjepa_cli.load_model("facebook/vjepa2-vitl-fpc64-256")
    feats = vjepa_cli.extract_features(model, "clip.mp4", frames=16)   # Features: .features [W, D], .timestamps
    emb = vjepa_cli.embed_images(model, ["a.jpg", "b.jpg"])           # [2, D]
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.config.extract import ExtractConfig, WindowConfig
from vjepa_cli.errors import VjepaError


@dataclass
class Features:
    """Features of one video or image, as a `vjepa extract` file holds them."""

    features: torch.Tensor  # [W, D] (pool mean) or [W, N, D] (pool none); [W, V, ...] with several views
    timestamps: torch.Tensor  # [W, 2] seconds (start, end) of each window
    grid: tuple[int, int, int]  # token grid (T', H', W') of a window
    metadata: dict[str, Any] = field(default_factory=dict)


def _model(model: Any, device: str | None, dtype: str):
    """A loaded model, or load one from a path / Hub id."""
    if hasattr(model, "encoder"):
        return model, getattr(model, "metadata", {}).get("source", "<in-memory model>")
    import vjepa_cli

    return vjepa_cli.load_model(model, device=device, dtype=dtype), str(model)


def _config(frames: int, frame_step: int | None, fps: float | None, stride: int | None, size: int | None,
            views: int, pool: str, levels, batch_size: int, device: str | None, dtype: str) -> ExtractConfig:
    try:
        lv = levels if levels in (None, "all") else tuple(int(v) for v in levels)
        return ExtractConfig(window=WindowConfig(frames=frames, frame_step=frame_step, fps=fps, stride=stride,
                                                 size=size, views=views),
                             pool=pool, levels=() if lv is None else lv, batch_size=batch_size, device=device,
                             dtype=dtype, workers=0, overwrite=True)
    except ValueError as e:
        raise VjepaError(str(e)) from None


def extract_features(model: Any, videos: str | Path | list[str | Path], *, frames: int = 16,
                     frame_step: int | None = None, fps: float | None = None, stride: int | None = None,
                     size: int | None = None, views: int = 1, pool: str = "mean", levels=None, batch_size: int = 8,
                     device: str | None = None, dtype: str = "fp32") -> Features | list[Features]:
    """Features of every window of a video (or of each video of a list), as `vjepa extract` computes them.

    `model`: a loaded model (`vjepa_cli.load_model`) or anything `load_model` reads. The other arguments are the
    command's options. Returns one `Features` for one path, a list for a list. An unreadable video raises
    `VjepaError` naming it."""
    single = isinstance(videos, (str, Path))
    paths = [Path(videos)] if single else [Path(v) for v in videos]
    cfg = _config(frames, frame_step, fps, stride, size, views, pool, levels, batch_size, device, dtype)
    loaded, name = _model(model, device, dtype)
    out = _run(loaded, name, paths, cfg)
    return out[0] if single else out


def _run(loaded: Any, name: str, paths: list[Path], cfg: ExtractConfig) -> list[Features]:
    from vjepa_cli.infer.extract import run_extract
    from vjepa_cli.io.tensors import load_tensors, meta_json

    with tempfile.TemporaryDirectory(prefix="vjepa-features-") as tmp:
        result = run_extract(["-"], Path(tmp) / "out", cfg, model_path=name, model=loaded,
                             stdin_lines=[str(p.resolve()) for p in paths])  # "-": paths as given, in order
        if result.failed:
            bad = result.failed[0]
            raise VjepaError(f"{bad.path}: {bad.error}")
        by_source = {r.path: r.output for r in result.videos}
        feats = []
        for p in paths:
            tensors, meta = load_tensors(by_source[str(p.resolve())])
            grid = tuple(int(v) for v in meta_json(meta, "grid"))
            feats.append(Features(tensors["features"], tensors["timestamps"], grid,
                                  {k: meta_json(meta, k) for k in meta}))
    return feats


def embed_images(model: Any, images, *, size: int | None = None, pool: str = "mean", levels=None,
                 batch_size: int = 8, device: str | None = None, dtype: str = "fp32") -> torch.Tensor:
    """Embeddings of still images: `[B, D]` (pool mean) or `[B, N, D]` (pool none).

    `images`: paths, uint8 arrays `[H, W, 3]` (a list of them, or one `[B, H, W, 3]` array). Each image is resized
    and centre-cropped as `vjepa extract` does (short side size*256/224, then size x size; size defaults to the
    model's) and read as one frame: a V-JEPA 2.1 encoder through its image embedder, others a repeated frame."""
    from vjepa_cli.data.media import crop_views
    from vjepa_cli.infer.extract import encode_windows
    from vjepa_cli.models.levels import resolve_levels
    from vjepa_cli.runtime import resolve_device, torch_dtype

    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    cfg = _config(1, None, None, None, size, 1, pool, levels, batch_size, device, dtype)
    loaded, _ = _model(model, device, dtype)
    dev = resolve_device(device)
    short, side = cfg.window.crop_for(int(loaded.config.img_size))
    lv = tuple(resolve_levels(loaded.encoder, cfg.levels))
    clips = np.stack([crop_views(_pixels(im)[None], short, side, 1)[0] for im in images])  # (B, 1, S, S, 3)
    out = [encode_windows(loaded.encoder, clips[i:i + batch_size], dev, torch_dtype(dtype) or torch.float32, pool, lv)
           for i in range(0, len(clips), batch_size)]
    return torch.cat(out)


def _pixels(image) -> np.ndarray:
    """uint8 [H, W, 3] from a path or an array."""
    if isinstance(image, (str, Path)):
        from vjepa_cli.data.media import read_image

        return read_image(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise VjepaError(f"an image array must be uint8 [H, W, 3], got {arr.dtype} {list(arr.shape)}")
    return arr
