"""`VideoClipDataset`: clips from one or more manifests, with exact, worker-independent randomness.

Every random choice for a sample (clip start, crop, flip, replacement of a bad video) comes from a
generator seeded by (seed, step, index), so a resumed run reads the same clips whatever the number of
workers. Bad videos are replaced by other samples drawn from that same generator, at most `max_retries`
times, and reported in the sample's `failures`.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config.data import DataConfig
from vjepa_cli.data.manifest import ManifestRow, read_manifest
from vjepa_cli.data.media import VideoReadError, check_backend, open_video
from vjepa_cli.data.sampling import clip_indices, resolve_frame_step
from vjepa_cli.data.transforms import eval_views, train_transform
from vjepa_cli.errors import VjepaError

log = logging.getLogger(__name__)
_MASK64 = (1 << 64) - 1


class NoGoodSampleError(VjepaError):
    """No readable video within the retry bound. Rebuilt in the main process by the DataLoader from the
    worker's traceback text; the constructor keeps only the original one-line message."""

    def __init__(self, message: str, hint: str | None = None):
        if message.startswith("Caught ") and "Traceback" in message:  # DataLoader worker re-raise
            last = [ln for ln in message.strip().splitlines() if ln.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message, hint)


def distinct_runs(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Collapse runs of equal consecutive frame indices (the padding of short clips).

    Returns (wanted, pos): `indices == wanted[pos]`; `wanted` keeps the order with no two equal neighbours
    (so the decoder seeks exactly as it would for `indices`) and `pos` is non-decreasing in steps of 0 or
    1. `pos` is None when there is no run to collapse (then `wanted` is `indices`).
    """
    indices = np.asarray(indices, dtype=np.int64)
    new = indices[1:] != indices[:-1]
    if new.all():
        return indices, None
    new = np.concatenate(([True], new))
    return indices[new], np.cumsum(new) - 1


def sample_rng(seed: int, step: int, index: int) -> np.random.Generator:
    """The generator of one sample: a pure function of (seed, step, index); step -1 = no step."""
    return np.random.default_rng([seed & _MASK64, step + 1, index])


class VideoClipDataset(torch.utils.data.Dataset):
    """Clips from the videos listed in `manifests` (concatenated in order; global index = position).

    Args:
        cfg: sampling, transform and decoding settings.
        manifests: manifest paths, or already-read lists of `ManifestRow`.
        train: random clip start + random resized crop + flip; else evenly placed clips and
            `cfg.eval_views` spatial views (short-side resize + centre crop when 1).
        seed: base seed of every sample's generator.

    `ds[index]` or `ds[(step, index)]` returns a dict:
        clip: uint8 [C, T, H, W]; [K, C, T, H, W] when num_clips * views = K > 1 (clip-major);
        label: int (-1 = none); index: int (the sample actually used, after replacements);
        dataset: int (which manifest); step: int (-1 when not given);
        failures: list of (path, reason) for bad videos that were replaced.
    """

    def __init__(self, cfg: DataConfig, manifests: Sequence[str | Path | Sequence[ManifestRow]],
                 train: bool, seed: int = 0):
        self.cfg, self.train, self.seed = cfg, train, seed
        check_backend(cfg.video_backend)
        self.rows: list[ManifestRow] = []
        self.sizes: list[int] = []
        for m in manifests:
            rows = read_manifest(m) if isinstance(m, (str, Path)) else list(m)
            if not rows:
                raise VjepaError("a dataset has no videos")
            self.rows.extend(rows)
            self.sizes.append(len(rows))
        self.offsets = np.cumsum([0, *self.sizes])
        self._starts = self.offsets.tolist()  # plain ints: bisect is ~10x cheaper than np.searchsorted

    def __len__(self) -> int:
        return len(self.rows)

    def dataset_of(self, index: int) -> int:
        return bisect.bisect_right(self._starts, index) - 1

    def load_clip(self, index: int, rng: np.random.Generator | None) -> torch.Tensor:
        """Decode and transform video `index`; raises `VideoReadError` for a bad or too short video."""
        cfg, row = self.cfg, self.rows[index]
        fpc = cfg.frames_per_clip
        reader = open_video(row.path, cfg.video_backend, cfg.decode_threads)
        try:
            n = reader.num_frames  # no decoding needed; the frame rate only matters with fps / duration
            vfps = reader.fps if cfg.fps is not None or cfg.duration is not None else None
            fstp = resolve_frame_step(vfps, fpc, cfg.frame_step, cfg.fps, cfg.duration)
            if not cfg.pad_short and n < fpc * fstp:
                raise VideoReadError(row.path, f"too short ({n} frames, a clip spans {fpc * fstp})")
            clips = clip_indices(n, fpc, fstp, cfg.num_clips, rng if self.train else None,
                                 allow_clip_overlap=not self.train)
            wanted, pos = distinct_runs(clips[0] if len(clips) == 1 else np.concatenate(clips))  # (U,), (K*T,)
            frames = reader.get_batch(wanted)  # (U, H, W, 3), one decode pass, each repeated frame once
        finally:
            reader.close()
        if frames.ndim != 4 or frames.shape[0] != len(wanted):
            raise VideoReadError(row.path, f"decoder returned {tuple(frames.shape)} frames")
        out = []
        for k in range(cfg.num_clips):
            f, idx = frames[k * fpc:(k + 1) * fpc], None  # (T, H, W, 3)
            if pos is not None:  # repeated frames: pass this clip's distinct frames and how to expand them
                p = pos[k * fpc:(k + 1) * fpc]  # non-decreasing in steps of 0 or 1
                f = frames[p[0]:p[-1] + 1]  # (U_k, H, W, 3)
                idx = p - p[0] if p[-1] - p[0] + 1 < fpc else None
            if self.train:
                out.append(train_transform(f, cfg.crop_size, cfg.random_resize_scale,
                                           cfg.random_resize_aspect_ratio, cfg.horizontal_flip, rng, idx))
            else:
                out.extend(eval_views(f, cfg.crop_size, cfg.eval_views, idx))
        return out[0] if len(out) == 1 else torch.stack(out)  # (C, T, H, W) or (K, C, T, H, W)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        step, index = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (-1, int(key))
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        rng = sample_rng(self.seed, step, index)
        failures: list[tuple[str, str]] = []
        current = index
        for _ in range(self.cfg.max_retries + 1):
            try:
                clip = self.load_clip(current, rng)
            except VideoReadError as e:
                failures.append((e.path, e.reason))
                log.debug("bad video %s: %s", e.path, e.reason)
                current = int(rng.integers(len(self)))
                continue
            row = self.rows[current]
            return {"clip": clip, "label": row.label, "index": current, "dataset": self.dataset_of(current),
                    "step": step, "failures": failures}
        shown = "; ".join(f"{Path(p).name}: {r}" for p, r in failures[:3])
        raise NoGoodSampleError(f"no readable video found in {len(failures)} attempts starting at sample {index} ({shown})",
                         "check the manifest with `vjepa preprocess`, or raise data.max_retries")


def collate_clips(samples: list[dict]) -> dict:
    """Stack samples: clip uint8 [B, ...], label/index/dataset/step LongTensor [B], failures flattened."""
    return {
        "clip": torch.stack([s["clip"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
        "dataset": torch.tensor([s.get("dataset", 0) for s in samples], dtype=torch.long),
        "step": torch.tensor([s["step"] for s in samples], dtype=torch.long),
        "failures": [f for s in samples for f in s["failures"]],
    }


class FailureLog:
    """Aggregate of bad videos seen during a run: feed it each batch's `failures`.

    `count` is the number of failed reads; `files` maps path -> (last reason, times seen).
    """

    def __init__(self):
        self.count = 0
        self.files: dict[str, tuple[str, int]] = {}

    def update(self, failures: Sequence[tuple[str, str]]) -> int:
        """Add failures; returns how many were new reads."""
        for path, reason in failures:
            self.count += 1
            self.files[path] = (reason, self.files.get(path, ("", 0))[1] + 1)
        return len(failures)

    def summary(self, max_files: int = 5) -> str:
        """One line: '3 bad video reads (2 files): a.mp4: empty file; b.mp4: cannot decode ...'."""
        if not self.count:
            return "no bad videos"
        shown = "; ".join(f"{Path(p).name}: {r}" for p, (r, _) in list(self.files.items())[:max_files])
        more = f"; +{len(self.files) - max_files} more" if len(self.files) > max_files else ""
        return f"{self.count} bad video reads ({len(self.files)} files): {shown}{more}"

    def to_dict(self) -> dict:
        return {"count": self.count, "files": {p: {"reason": r, "count": c} for p, (r, c) in self.files.items()}}

    state_dict = to_dict

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        self.files = {p: (v["reason"], int(v["count"])) for p, v in state["files"].items()}
