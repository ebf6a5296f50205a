"""The decoder's training data: clips cut once from the videos, encoded once by the frozen encoder (the model
file's encoder, which for our files is the EMA target encoder), and kept in memory as (features, frames) pairs.

Features are layer-normed over channels without affine parameters, as the predictor's training targets are
(`train.loss.normalize_targets`), so that a decoder trained on them reads predictions too. World-model files
encode each frame on its own (repeated to the tubelet by the encoder, `models.frozen.encode_frames`): with
`single_frames` a sample is one frame's tokens and that frame repeated to the tubelet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_cli.config.decoder import DecoderDataConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError


@dataclass
class Encoder:
    """The frozen encoder the decoder reads, and how its features are made."""

    module: torch.nn.Module  # (B, 3, T, S, S) -> (B, N, D)
    config: ModelConfig
    single_frames: bool  # a world model's encoder: every frame encoded alone
    path: Path

    @property
    def embed_dim(self) -> int:
        return int(self.config.resolve().embed_dim)


def open_encoder(path: str | Path, device: torch.device) -> Encoder:
    """The encoder of a model file (ours, converted, or a `vjepa wm train` world model), frozen, on `device`."""
    from vjepa_cli.io.tensors import read_metadata

    path = Path(path)
    if not path.exists():
        raise VjepaError(f"model file not found: {path}")
    meta = read_metadata(path) if path.suffix == ".safetensors" and path.is_file() else {}
    if meta.get("format", "").startswith("vjepa-wm/"):
        from vjepa_cli.models.world_model import load_world_model

        wm = load_world_model(path, device)
        return Encoder(wm.encoder.module, wm.encoder.config, True, path)
    from vjepa_cli.models.load import load_model

    loaded = load_model(path, device=device)
    if loaded.encoder is None or not isinstance(loaded.config, ModelConfig):
        raise VjepaError(f"{path} holds no video encoder")
    return Encoder(loaded.encoder.eval().requires_grad_(False), loaded.config, False, path)


def video_paths(source: str, cfg: DecoderDataConfig, size: int) -> list[Path]:
    """The videos of `source`: `synth:<task>` (generated into the cache), a manifest, a folder with train.csv, or
    an episodes folder of `vjepa wm collect` (its manifest.csv lists episode folders)."""
    from vjepa_cli.data.manifest import read_manifest

    if source.startswith("synth:"):
        from vjepa_cli.config.data import SYNTH_TASKS, SynthSpec
        from vjepa_cli.data.synth import ensure_synth

        task = source.removeprefix("synth:")
        if task not in SYNTH_TASKS:
            raise VjepaError(f"unknown synthetic task '{task}'", hint=f"use synth:{' or synth:'.join(SYNTH_TASKS)}")
        spec = SynthSpec(task=task, videos=cfg.synth_videos, frames=16, size=size, seed=cfg.synth_seed)
        manifest = ensure_synth(spec).train_manifest
    else:
        p = Path(source)
        manifest = (p / "train.csv" if (p / "train.csv").is_file() else p / "manifest.csv") if p.is_dir() else p
        if not manifest.is_file():
            raise VjepaError(f"data not found: {manifest}", hint="give a manifest CSV, a folder with train.csv, "
                                                                 "a `vjepa wm collect` folder, or synth:physics")
    # an episode of `vjepa wm collect` is a folder holding frames.mp4
    paths = [Path(r.path) / "frames.mp4" if Path(r.path).is_dir() else Path(r.path) for r in read_manifest(manifest)]
    if not paths:
        raise VjepaError(f"{manifest} lists no videos")
    return paths


def _resized(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> [T, size, size, 3]: short side resized to `size`, then the centre crop."""
    if frames.shape[1:3] == (size, size):
        return frames
    from vjepa_cli.data.transforms import center_crop, short_side_resize, to_tchw

    x = center_crop(short_side_resize(to_tchw(frames), size), size)  # (T, 3, S, S) uint8
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def cut_clips(paths: list[Path], n: int, frames: int, size: int, seed: int) -> np.ndarray:
    """`n` clips of `frames` consecutive frames, video and start drawn with `seed` -> uint8 `(n, T, S, S, 3)`.
    Videos shorter than a clip are skipped; none long enough is an error."""
    from vjepa_cli.data.media import VideoReadError, read_video

    rng = np.random.default_rng([seed, 7])
    cache: dict[int, np.ndarray | None] = {}
    out = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        i = int(rng.integers(len(paths)))
        if i not in cache:
            try:
                v = read_video(paths[i])
                cache[i] = _resized(v, size) if len(v) >= frames else None
            except VideoReadError:
                cache[i] = None
        v = cache[i]
        if v is not None:
            s = int(rng.integers(len(v) - frames + 1))
            out.append(v[s:s + frames])
    if not out:
        raise VjepaError(f"no readable video has {frames} frames", hint="use shorter clips (--set data.frames=N)")
    return np.stack(out)


@torch.no_grad()
def encode_clips(enc: Encoder, clips: np.ndarray, batch_size: int, device: torch.device,
                 on_batch=None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 clips `(M, T, S, S, 3)` -> (layer-normed features `(M', N, D)`, their frames uint8 `(M', T', S, S, 3)`):
    whole clips, or with `single_frames` every frame alone (M' = M*T, its frame repeated to the tubelet)."""
    from vjepa_cli.data.transforms import normalize_clips

    tub = enc.config.tubelet_size
    if enc.single_frames:
        clips = clips.reshape(-1, 1, *clips.shape[2:])  # (M*T, 1, S, S, 3)
    feats = []
    for i in range(0, len(clips), batch_size):
        x = normalize_clips(torch.from_numpy(clips[i:i + batch_size]), device, channels_last=True)  # (b, 3, T, S, S)
        z = enc.module(x)  # (b, N, D)
        feats.append(F.layer_norm(z, (z.shape[-1],)).float().cpu())
        if on_batch:
            on_batch(1)
    frames = torch.from_numpy(clips)
    if enc.single_frames:
        frames = frames.repeat(1, tub, 1, 1, 1)  # (M*T, tub, S, S, 3)
    return torch.cat(feats), frames


@dataclass
class DecoderData:
    """Training pairs in memory: features `(M, N, D)` float and frames `(M, T, S, S, 3)` uint8 (CPU)."""

    features: torch.Tensor
    frames: torch.Tensor

    def batch(self, size: int, rng: np.random.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` pairs drawn by `rng` -> features `(B, N, D)` and frames `(B, T, S, S, 3)` float in [0, 1]."""
        idx = torch.from_numpy(rng.integers(len(self.features), size=size))
        return self.features[idx].to(device), self.frames[idx].to(device).float() / 255


def prepare_data(enc: Encoder, cfg: DecoderDataConfig, seed: int, device: torch.device,
                 on_phase=None, on_step=None) -> DecoderData:
    """Cut `cfg.clips` clips from `cfg.source` and encode them (the "features" phase of the progress bar)."""
    size = int(enc.config.img_size)
    frames = 1 if enc.single_frames else cfg.frames  # a world model's encoder reads frames one at a time
    if frames % enc.config.tubelet_size and not enc.single_frames:
        raise VjepaError(f"clips of {frames} frames are not whole tubelets of {enc.config.tubelet_size}",
                         hint="set data.frames to a multiple of the tubelet")
    clips = cut_clips(video_paths(cfg.source, cfg, size), cfg.clips, frames, size, seed)
    if on_phase:
        on_phase("features", -(-len(clips) // cfg.batch_size))
    feats, pix = encode_clips(enc, clips, cfg.batch_size, device, on_step)
    return DecoderData(feats, pix)
