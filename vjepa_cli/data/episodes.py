"""Episode folders for world-model training, and fixed-length windows sampled from them.

Layout of a collection (see the README, "Episode format")::

    DIR/manifest.csv            path,num_frames,fps,width,height   (one row per episode)
    DIR/ep_00000/frames.mp4     T frames, lossless RGB H.264
    DIR/ep_00000/episode.safetensors
        actions [T-1, A] float32    action taken between frame t and t+1
        states  [T, S]   float32    optional proprioceptive state per frame
        metadata: fps, env, action_names, state_names, action_low, action_high, (goal, success, ...)
    DIR/ep_00000/goal.png       optional goal image

Loading at a lower fps than recorded takes every `stride`-th frame and sums the actions in between
(actions are displacements, as the end-effector deltas of DROID in V-JEPA 2-AC).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.data.media import read_image, read_video, write_png, write_video
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import atomic_path
from vjepa_cli.io.tensors import load_tensors, meta_json, save_tensors

MANIFEST = "manifest.csv"
MANIFEST_HEADER = ("path", "num_frames", "fps", "width", "height")
# a collection's extra seeded resets for the state probe: frames uint8 [M, H, W, 3], states float32 [M, S]
PROBE_FILE = "probe.safetensors"


@dataclass
class Episode:
    """One recorded episode, in memory."""

    frames: np.ndarray | None  # (T, H, W, 3) uint8, None when loaded without frames
    actions: np.ndarray  # (T-1, A) float32
    states: np.ndarray | None = None  # (T, S) float32
    fps: float = 10.0  # recording frame rate
    action_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    action_low: tuple[float, ...] = ()  # per-dimension action bounds
    action_high: tuple[float, ...] = ()
    goal: np.ndarray | None = None  # (H, W, 3) uint8 goal image
    rewards: np.ndarray | None = None  # (T-1,) float32 reward after each action (Gymnasium's, or -distance)
    info: dict[str, Any] = field(default_factory=dict)  # extra JSON-able metadata (env, success, ...)

    @property
    def num_frames(self) -> int:
        return int(self.actions.shape[0]) + 1

    def check(self) -> None:
        T, A = self.num_frames, self.actions.shape[1]
        if self.frames is not None and len(self.frames) != T:
            raise ValueError(f"{len(self.frames)} frames but {T - 1} actions (need T-1)")
        if self.states is not None and len(self.states) != T:
            raise ValueError(f"{len(self.states)} states for {T} frames")
        if self.rewards is not None and len(self.rewards) != T - 1:
            raise ValueError(f"{len(self.rewards)} rewards for {T - 1} actions")
        for name, seq in (("action_names", self.action_names), ("action_low", self.action_low),
                          ("action_high", self.action_high)):
            if seq and len(seq) != A:
                raise ValueError(f"{name} has {len(seq)} entries for {A} action dimensions")


def write_episode(folder: str | Path, ep: Episode) -> Path:
    """Write one episode folder (each file atomically)."""
    ep.check()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "frames.mp4", ep.frames, ep.fps, lossless=True, preset="ultrafast")  # decodes bit-exact
    tensors = {"actions": torch.from_numpy(np.asarray(ep.actions, dtype=np.float32))}
    if ep.states is not None:
        tensors["states"] = torch.from_numpy(np.asarray(ep.states, dtype=np.float32))
    if ep.rewards is not None:
        tensors["rewards"] = torch.from_numpy(np.asarray(ep.rewards, dtype=np.float32))
    meta = {"format": "vjepa-episode/1", "fps": ep.fps, "action_names": list(ep.action_names),
            "state_names": list(ep.state_names), "action_low": list(ep.action_low),
            "action_high": list(ep.action_high), **ep.info}
    save_tensors(folder / "episode.safetensors", tensors, meta)
    if ep.goal is not None:
        write_png(folder / "goal.png", ep.goal)
    return folder


def read_episode(folder: str | Path, frames: bool = True) -> Episode:
    """Read an episode folder; `frames=False` skips decoding the video."""
    folder = Path(folder)
    if not (folder / "episode.safetensors").is_file():
        raise VjepaError(f"{folder} is not an episode folder (no episode.safetensors)")
    tensors, meta = load_tensors(folder / "episode.safetensors")
    if "actions" not in tensors or tensors["actions"].ndim != 2:
        raise VjepaError(f"{folder}/episode.safetensors has no 'actions' [T-1, A] tensor")
    known = {"format", "fps", "action_names", "state_names", "action_low", "action_high"}
    info = {k: meta_json(meta, k) for k in meta if k not in known}
    ep = Episode(
        frames=read_video(folder / "frames.mp4") if frames else None,
        actions=tensors["actions"].numpy(), states=tensors["states"].numpy() if "states" in tensors else None,
        fps=float(meta_json(meta, "fps", 10.0)),
        action_names=tuple(meta_json(meta, "action_names", [])), state_names=tuple(meta_json(meta, "state_names", [])),
        action_low=tuple(meta_json(meta, "action_low", [])), action_high=tuple(meta_json(meta, "action_high", [])),
        info=info, rewards=tensors["rewards"].numpy() if "rewards" in tensors else None,
    )
    if (folder / "goal.png").is_file() and frames:
        ep.goal = read_image(folder / "goal.png")
    try:
        ep.check()
    except ValueError as e:
        raise VjepaError(f"{folder}: inconsistent episode: {e}") from None
    return ep


def write_manifest(root: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write DIR/manifest.csv atomically; rows hold the MANIFEST_HEADER keys, paths relative to DIR."""
    path = Path(root) / MANIFEST
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_HEADER)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in MANIFEST_HEADER})
    return path


def read_manifest(root: str | Path) -> list[Path]:
    """Episode folders listed in DIR/manifest.csv (relative paths resolved against DIR)."""
    root = Path(root)
    path = root / MANIFEST if root.is_dir() else root
    if not path.is_file():
        raise VjepaError(f"no episode manifest at {path}", "collect episodes with `vjepa wm collect -o DIR`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0]:
        raise VjepaError(f"{path} lists no episodes (expected a CSV with a 'path' column)")
    return [(path.parent / r["path"]) for r in rows]


def stride_for(ep_fps: float, fps: float | None) -> int:
    """Frame step that samples an episode recorded at `ep_fps` at about `fps` (None = every frame)."""
    return 1 if fps is None or fps <= 0 else max(1, round(ep_fps / fps))


def window_indices(num_frames: int, length: int, stride: int, start: int) -> np.ndarray:
    """Frame indices of a window of `length` frames, `stride` apart, from `start`."""
    idx = start + stride * np.arange(length)
    if idx[-1] >= num_frames:
        raise ValueError(f"window of {length} frames at stride {stride} from {start} exceeds {num_frames} frames")
    return idx


def window_actions(actions: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Actions between consecutive sampled frames: the sum of the per-frame actions in between -> [L-1, A]."""
    csum = np.concatenate([np.zeros_like(actions[:1]), np.cumsum(actions, 0)])  # (T, A)
    return csum[idx[1:]] - csum[idx[:-1]]
