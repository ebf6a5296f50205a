"""Training data for the world model: episodes -> cached features -> random fixed-length windows.

The frozen encoder's features of every episode are written once to `<cache>/<episode>.safetensors`
(`features` [T, N, D], the encoder's key in the metadata) and read back for training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config.wm import WMConfig
from vjepa_cli.data.episodes import (
    PROBE_FILE,
    read_episode,
    read_manifest,
    stride_for,
    window_actions,
    window_indices,
)
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.tensors import load_tensors, save_tensors
from vjepa_cli.models.frozen import FrozenEncoder, encode_frames, load_frozen_encoder


def cache_features(enc: FrozenEncoder, episodes: list[Path], cache_dir: Path, batch_size: int = 64,
                   on_episode: Callable[[int], None] | None = None) -> list[Path]:
    """Write `cache_dir/<episode>.safetensors` ("features" [T, N, D]) for every episode not cached yet."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i, ep_dir in enumerate(episodes):
        path = cache_dir / f"{ep_dir.name}.safetensors"
        if not path.is_file():
            ep = read_episode(ep_dir)
            z = encode_frames(enc, ep.frames, batch_size)  # (T, N, D)
            save_tensors(path, {"features": z}, {"episode": str(ep_dir), "encoder": enc.key})
        out.append(path)
        if on_episode is not None:
            on_episode(i)
    return out


def load_cached(path: Path) -> torch.Tensor:
    """The cached features [T, N, D] of one episode."""
    tensors, _ = load_tensors(path)
    return tensors["features"]


@dataclass
class WMData:
    """Cached features and per-episode actions/states, plus what the model file must record."""

    encoder: FrozenEncoder
    features: list[torch.Tensor]  # per episode (T_i, N, D), CPU
    actions: list[np.ndarray]  # per episode (T_i - 1, A)
    states: list[np.ndarray | None]  # per episode (T_i, S) or None
    rewards: list[np.ndarray | None]  # per episode (T_i - 1,) or None (episodes recorded before rewards)
    action_names: list[str]
    action_low: list[float]
    action_high: list[float]
    state_names: list[str]
    fps: float  # recording fps of the episodes
    stride: int  # frame step of the training windows
    env: str  # environment name recorded in the episodes ("" when unknown)
    probe_features: torch.Tensor | None = None  # (M, N, D) frames of extra resets, for the state probe alone
    probe_states: np.ndarray | None = None  # (M, S) their states
    probe_path: Path | None = None  # the file of their frames and states (`PROBE_FILE`), for the goal reader

    @property
    def embed_dim(self) -> int:
        return int(self.features[0].shape[-1])

    @property
    def grid(self) -> tuple[int, int]:
        return self.encoder.grid

    @property
    def action_dim(self) -> int:
        return int(self.actions[0].shape[1])

    @property
    def state_dim(self) -> int:
        return 0 if self.states[0] is None else int(self.states[0].shape[1])


def prepare_data(cfg: WMConfig, out_dir: Path, device: torch.device | str,
                 on_phase: Callable[[str, int], None] | None = None,
                 on_step: Callable[[int, dict], None] | None = None) -> WMData:
    """Collect episodes when the recipe names none, then encode and cache every episode's frames."""
    d = cfg.data
    root = Path(d.episodes) if d.episodes else out_dir / "episodes"
    if not d.episodes and not (root / "manifest.csv").is_file():
        from vjepa_cli.envs.collect import run_wm_collect

        if on_phase:
            on_phase("collect", d.num_episodes + d.probe_resets)
        # "noisy" follows the environment's expert, or (Gymnasium envs without one) replays the goal actions;
        # the probe's resets keep their goal frames
        goal = {"goal_steps": d.goal_steps, "goal_policy": d.goal_policy} \
            if d.policy == "noisy" or d.probe_resets else {}
        run_wm_collect(d.env, d.num_episodes, root, steps=d.steps, size=d.size, seed=d.seed, policy=d.policy,
                       on_episode=(lambda i: on_step(i, {})) if on_step else None, probe_resets=d.probe_resets,
                       on_reset=(lambda i: on_step(d.num_episodes + i, {})) if on_step else None, **goal)
    dirs = read_manifest(root)
    first = read_episode(dirs[0], frames=False)
    stride = stride_for(first.fps, d.fps)
    need = (d.num_frames - 1) * stride + 1
    encoder = load_frozen_encoder(cfg.encoder, device)
    cache = Path(d.cache_dir) if d.cache_dir else root / "features" / encoder.key
    if on_phase:
        on_phase("features", len(dirs))
    paths = cache_features(encoder, dirs, cache, cfg.encoder.batch_size,
                           on_episode=(lambda i: on_step(i, {})) if on_step else None)
    feats, acts, states, rewards = [], [], [], []
    for ep_dir, path in zip(dirs, paths, strict=True):
        ep = read_episode(ep_dir, frames=False)
        if ep.actions.shape[1] != first.actions.shape[1]:
            raise VjepaError(f"{ep_dir}: {ep.actions.shape[1]} action dims, but {dirs[0]} has {first.actions.shape[1]}")
        if ep.num_frames < need:
            continue  # too short for one window at this stride
        if cfg.predictor.use_states and ep.states is None:
            raise VjepaError(f"{ep_dir} has no states", "set predictor.use_states=false")
        feats.append(load_cached(path))
        acts.append(ep.actions)
        states.append(ep.states)
        rewards.append(ep.rewards)
    if not feats:
        raise VjepaError(f"no episode in {root} has {need} frames", "lower data.num_frames or collect longer episodes")
    probe_z, probe_s = probe_poses(encoder, root / PROBE_FILE, cache, cfg.encoder.batch_size, first.states)
    low = list(first.action_low) or [float(x) for x in np.min([a.min(0) for a in acts], 0)]
    high = list(first.action_high) or [float(x) for x in np.max([a.max(0) for a in acts], 0)]
    return WMData(encoder, feats, acts, states, rewards, list(first.action_names), low, high, list(first.state_names),
                  first.fps, stride, str(first.info.get("env", "")), probe_z, probe_s,
                  root / PROBE_FILE if probe_z is not None else None)


def probe_poses(enc: FrozenEncoder, path: Path, cache_dir: Path, batch_size: int,
                states: np.ndarray | None) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """The collection's extra probe poses (`PROBE_FILE`, see `envs.collect`), encoded once and cached with their
    states as `cache_dir/PROBE_FILE` (the frames are read only to encode them): features (M, N, D) and states
    (M, S); (None, None) when it has none."""
    if not path.is_file():
        return None, None
    cached = cache_dir / PROBE_FILE
    tensors = load_tensors(cached)[0] if cached.is_file() else {}
    if "states" not in tensors:  # not cached yet
        raw, _ = load_tensors(path)
        z = encode_frames(enc, raw["frames"].numpy(), batch_size)  # (M, N, D)
        tensors = {"features": z, "states": raw["states"]}
        save_tensors(cached, tensors, {"probe": str(path), "encoder": enc.key})
    s = tensors["states"].numpy()
    if states is None or s.shape[1] != states.shape[1]:
        raise VjepaError(f"{path}: states of {s.shape[1]} entries do not match the episodes'",
                         "collect the episodes and the probe's resets again together")
    return tensors["features"], s


class WindowSampler:
    """Draws windows of `num_frames` frames (uniform over all valid windows) from `WMData`."""

    def __init__(self, data: WMData, num_frames: int, use_states: bool = False):
        self.data, self.num_frames, self.use_states = data, num_frames, use_states
        span = (num_frames - 1) * data.stride
        self.starts = np.array([f.shape[0] - span for f in data.features])  # valid starts per episode
        self.weights = self.starts / self.starts.sum()

    def sample(self, batch: int, rng: np.random.Generator, device: torch.device | str):
        """-> features [B, T, N, D], actions [B, T-1, A], states [B, T, S] or None (on `device`)."""
        eps = rng.choice(len(self.starts), size=batch, p=self.weights)
        z, a, s = [], [], []
        for e in eps:
            start = int(rng.integers(self.starts[e]))
            idx = window_indices(self.data.features[e].shape[0], self.num_frames, self.data.stride, start)
            z.append(self.data.features[e][torch.from_numpy(idx)])
            a.append(torch.from_numpy(window_actions(self.data.actions[e], idx)))
            if self.use_states:
                s.append(torch.from_numpy(self.data.states[e][idx]))
        states = torch.stack(s).to(device) if self.use_states else None
        return torch.stack(z).to(device), torch.stack(a).float().to(device), states
