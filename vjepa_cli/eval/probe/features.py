"""Clips for probing and their frozen-encoder features, optionally cached on disk.

A probe sample is one video (or image) read as `segments` temporal clips x `views` spatial crops
(V-JEPA `ClipAggregation`): every clip is encoded separately, and for each view the tokens of all segments
are concatenated, giving features (views, segments * N, D). Training clips use one random view (random
temporal position and RandomResizedCrop, no flip: direction matters for SSv2 and motion); validation clips
use fixed positions and `views` crops along the long side.

With a cache, each training video is encoded `cache_clips_per_video` times (different random clips) and
each validation video once; the features are kept as fp16 safetensors keyed by everything that affects them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config.probe import ProbeConfig, ProbeHeadConfig
from vjepa_cli.data.media import VideoReadError, open_video, read_image
from vjepa_cli.data.sampling import clip_indices
from vjepa_cli.data.transforms import eval_views, train_transform
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.levels import encode_levels, resolve_levels
from vjepa_cli.runtime import stable_hash

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


def read_sample(path: str, cfg: ProbeConfig, train: bool, rng: np.random.Generator, image: bool = False) -> torch.Tensor:
    """Decode and transform one sample: uint8 [V, S, C, T, R, R] (V = 1 when training).

    Raises:
        VideoReadError: the file cannot be read (the caller skips and counts it).
    """
    d = cfg.data
    if image:
        img = read_image(path)[None]  # (1, H, W, 3)
        segments = [np.repeat(img, d.frames, axis=0)]  # an image repeated to the clip length
    else:
        reader = open_video(path, d.backend)
        try:
            n = reader.info.num_frames
            idx = clip_indices(n, d.frames, d.frame_step, d.segments, rng if train else None, allow_clip_overlap=not train)
            frames = reader.get_batch(np.concatenate(idx))  # (S*T, H, W, 3)
        finally:
            reader.close()
        if frames.ndim != 4 or frames.shape[0] != d.frames * d.segments:
            raise VideoReadError(path, f"decoder returned {tuple(frames.shape)} frames")
        segments = [frames[s * d.frames:(s + 1) * d.frames] for s in range(d.segments)]
    if train:
        clips = [train_transform(f, d.resolution, d.train_scale, (3 / 4, 4 / 3), False, rng) for f in segments]
        out = torch.stack(clips)[None]  # (1, S, C, T, R, R)
    else:
        per_seg = [eval_views(f, d.resolution, d.views) for f in segments]  # S lists of V clips
        out = torch.stack([torch.stack([per_seg[s][v] for s in range(len(segments))]) for v in range(d.views)])
    return out


class ProbeClips(torch.utils.data.Dataset):
    """Samples for one split and one draw: item i -> {"clip": uint8 [V, S, C, T, R, R] or None, "label", "index", "error"}."""

    def __init__(self, samples: list[tuple[str, int]], cfg: ProbeConfig, train: bool, draw: int = 0, images: bool = False):
        self.samples, self.cfg, self.train, self.draw, self.images = samples, cfg, train, draw, images

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        path, label = self.samples[i]
        rng = np.random.default_rng([self.cfg.seed, self.draw, i, int(self.train)])
        try:
            clip = read_sample(path, self.cfg, self.train, rng, self.images)
            return {"clip": clip, "label": label, "index": i, "error": None}
        except VideoReadError as e:
            return {"clip": None, "label": label, "index": i, "error": f"{Path(path).name}: {e.reason}"}


def _collate(items: list[dict]) -> list[dict]:
    return items


@torch.no_grad()
def encode_clips(encoder: torch.nn.Module, clips: torch.Tensor, layers: tuple[int, ...], device: torch.device,
                 dtype: torch.dtype = torch.float32, levels: tuple[int, ...] = ()) -> torch.Tensor:
    """uint8 [B, V, S, C, T, H, W] -> features [B, V, S*N, D * k] (fp32, on CPU).

    `levels` (V-JEPA 2.1, 0-based levels): those levels of the hierarchical output, each normed by its own
    LayerNorm, concatenated along the width (the official multilevel probes read the level blocks this way).
    Else `layers` empty: the encoder's final (normalised) output; else the listed blocks (1-based, negatives from
    the end), concatenated along the width, each through the final norm (a 2.1 encoder: only level blocks, each
    through its level's norm).
    """
    from vjepa_cli.data.transforms import normalize_clips

    B, V, S = clips.shape[:3]
    x = normalize_clips(clips.flatten(0, 2), device=device, dtype=dtype)  # (B*V*S, C, T, H, W)
    if levels:
        z = encode_levels(encoder, x, levels)  # (B*V*S, N, D * len(levels))
    elif not layers:
        z = encoder(x)  # (B*V*S, N, D)
    else:
        blocks = _blocks(encoder, layers)
        _, hidden = encoder.forward_features(x, return_layers=blocks)
        z = torch.cat([_layer_norm(encoder, b)(h) for b, h in zip(blocks, hidden, strict=True)], dim=-1)
    N, D = z.shape[1:]
    return z.float().reshape(B, V, S * N, D).cpu()  # segments concatenated as tokens


def probe_features(encoder: torch.nn.Module, clips: torch.Tensor, head: ProbeHeadConfig, device: torch.device,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The features a probe with `head`'s readout (layers or 2.1 levels) reads: `encode_clips` with them."""
    return encode_clips(encoder, clips, head.layers, device, dtype, resolve_levels(encoder, head.levels))


def readout_width(encoder: torch.nn.Module, head: ProbeHeadConfig) -> int:
    """Width of `probe_features`: D times the number of layers or levels read (1 for the default output)."""
    n = len(resolve_levels(encoder, head.levels)) or len(head.layers)
    return int(encoder.embed_dim) * max(1, n)


def check_readout(encoder: torch.nn.Module, head: ProbeHeadConfig) -> None:
    """Raise the one-line VjepaError `encode_clips` would, before any clip is read (levels or layers this encoder
    lacks, or blocks that are not 2.1 levels)."""
    resolve_levels(encoder, head.levels)
    for b in _blocks(encoder, head.layers):
        _layer_norm(encoder, b)


def _blocks(encoder: torch.nn.Module, layers: tuple[int, ...]) -> list[int]:
    """1-based (negatives from the end) block numbers -> 0-based indices; a VjepaError for one out of range."""
    depth = len(encoder.blocks)
    out = [v - 1 if v > 0 else depth + v for v in layers]
    bad = [v for v, b in zip(layers, out, strict=True) if not 0 <= b < depth]
    if bad:
        raise VjepaError(f"probe layer {bad[0]} is out of range: the encoder has {depth} blocks (1..{depth}, or -1..-{depth})")
    return out


def _layer_norm(encoder: torch.nn.Module, block: int) -> torch.nn.Module:
    """The norm applied to block `block`'s output: the final norm, or (2.1) the norm of the level read there."""
    levels = tuple(getattr(encoder, "levels", ()) or ())
    if not levels:
        return encoder.norm
    if block not in levels:
        raise VjepaError(f"block {block + 1} is not a level of this V-JEPA 2.1 encoder, whose levels are read after "
                         f"blocks {', '.join(str(b + 1) for b in levels)} (1-based)",
                         hint="use probe.levels (e.g. --levels all) or one of those blocks in probe.layers")
    return encoder.norms_block[levels.index(block)]


def encode_split(encoder: torch.nn.Module, samples: list[tuple[str, int]], cfg: ProbeConfig, train: bool, draw: int,
                 device: torch.device, images: bool = False, progress: Progress | None = None,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Encode every sample of a split once: (features fp16 [n, V, S*N, D'], labels [n], errors).

    Unreadable samples are skipped; their messages are returned.
    """
    loader = torch.utils.data.DataLoader(
        ProbeClips(samples, cfg, train, draw, images), batch_size=cfg.batch_encode, shuffle=False,
        num_workers=cfg.num_workers, collate_fn=_collate,
    )
    feats, labels, errors = [], [], []
    for items in loader:
        ok = [it for it in items if it["clip"] is not None]
        errors += [it["error"] for it in items if it["clip"] is None]
        if ok:
            clips = torch.stack([it["clip"] for it in ok])
            feats.append(probe_features(encoder, clips, cfg.probe, device, dtype).half())
            labels += [it["label"] for it in ok]
        if progress is not None:
            progress(len(items))
    if not feats:
        return torch.empty(0), torch.empty(0, dtype=torch.long), errors
    return torch.cat(feats), torch.tensor(labels, dtype=torch.long), errors


def cache_key(model_id: str, task: str, samples: list[tuple[str, int]], cfg: ProbeConfig, train: bool, draw: int) -> str:
    """Everything that changes the features of a split: model, samples, sampling, layers, seed, draw."""
    d = cfg.data
    return stable_hash({
        "model": model_id, "task": task, "samples": stable_hash(samples, 64),
        "frames": d.frames, "step": d.frame_step, "segments": d.segments, "views": d.views, "res": d.resolution,
        "scale": list(d.train_scale), "layers": list(cfg.probe.layers), **_levels_key(cfg), "seed": cfg.seed, "train": train, "draw": draw,
    }, 20)


def _levels_key(cfg: ProbeConfig) -> dict:
    """The levels in the cache key only when set, so caches made before levels existed stay valid."""
    lv = cfg.probe.levels
    return {} if lv == () else {"levels": lv if lv == "all" else list(lv)}


def cached_split(cache_dir: Path | None, key: str, compute: Callable[[], tuple[torch.Tensor, torch.Tensor, list[str]]]
                 ) -> tuple[torch.Tensor, torch.Tensor, list[str], bool]:
    """Load features for `key` from `cache_dir`, or compute and store them. Returns (..., hit)."""
    from vjepa_cli.io.tensors import load_tensors, meta_json, save_tensors

    path = None if cache_dir is None else Path(cache_dir) / f"{key}.safetensors"
    if path is not None and path.is_file():
        try:
            t, meta = load_tensors(path)
            return t["features"], t["labels"], list(meta_json(meta, "errors", [])), True
        except Exception as e:  # a damaged cache entry is recomputed, never fatal
            log.warning("ignoring unreadable cache entry %s (%s)", path, e)
    feats, labels, errors = compute()
    if path is not None and len(feats):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, {"features": feats.contiguous(), "labels": labels}, {"errors": errors})
    return feats, labels, errors, False
