"""Helpers for the data tests: trivial pixel oracles for the synthetic tasks and broken video files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def phase_shift(a: np.ndarray, b: np.ndarray, exclude: int = 1) -> tuple[int, int]:
    """Dominant circular shift (dy, dx) taking grey frame a to b, ignoring shifts within `exclude` of 0."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    r = fb * np.conj(fa)
    corr = np.real(np.fft.ifft2(r / (np.abs(r) ** 0.5 + 1e-9)))
    h, w = corr.shape
    for dy in range(-exclude, exclude + 1):
        for dx in range(-exclude, exclude + 1):
            corr[dy % h, dx % w] = -np.inf  # the static background
    y, x = np.unravel_index(np.argmax(corr), corr.shape)
    return (y if y <= h // 2 else y - h), (x if x <= w // 2 else x - w)


def motion_oracle(frames: np.ndarray, directions: int, speeds: int, lag: int = 4) -> int:
    """Class of a `motion` video from pixels: phase correlation between frame 0 and frame `lag`."""
    g = frames.astype(np.float64).mean(axis=3)
    dy, dx = phase_shift(g[0], g[lag])
    size = frames.shape[1]
    vy, vx = dy / lag, dx / lag
    theta = math.atan2(-vy, vx) % (2 * math.pi)
    d = int(round(theta / (2 * math.pi / directions))) % directions
    s = int(round(math.hypot(vy, vx) / (size / 64))) - 1
    return d * speeds + min(max(s, 0), speeds - 1)


COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 210, 30)]


def shapes_oracle(frame: np.ndarray) -> int:
    """Class of a `shapes` video from ONE frame: colour of the saturated pixels, fill ratio of their box."""
    f = frame.astype(np.float64)
    sat = f.max(axis=2) - f.min(axis=2)
    mask = sat > 90
    colour = f[mask].mean(axis=0)
    c = int(np.argmin([np.sum((colour - np.array(k)) ** 2) for k in COLOURS]))
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    s = int(np.argmin([abs(fill - v) for v in (math.pi / 4, 1.0, 0.5)]))
    return s * 4 + c


def write_corrupt_files(folder: Path, good: Path) -> dict[str, Path]:
    """Empty, garbage, truncated copies of a good mp4, and a missing path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    files = {
        "empty": folder / "empty.mp4",
        "garbage": folder / "garbage.mp4",
        "truncated": folder / "truncated.mp4",
        "missing": folder / "missing.mp4",
    }
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["truncated_faststart"] = folder / "truncated_faststart.mp4"
    full = folder / "faststart.mp4"
    write_faststart(full, np.random.default_rng(1).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8), fps=8)
    data = full.read_bytes()
    files["truncated_faststart"].write_bytes(data[: len(data) // 2])  # header intact, frames cut
    return files


def write_faststart(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    """An mp4 with its index at the front (so a truncated copy still opens)."""
    import av

    c = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"})
    s = c.add_stream("libx264", rate=fps, options={"crf": "18", "g": "8"})
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    for f in frames:
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


def official_clip_indices(n, fpc, fstp, num_clips, random_clip_sampling, allow_clip_overlap, randint):
    """The official loader's formula, transcribed independently (randint(lo, hi) replaces np.random.randint)."""
    clip_len = int(fpc * fstp)
    partition_len = n // num_clips
    out = []
    for i in range(num_clips):
        if partition_len > clip_len:
            end_indx = clip_len
            if random_clip_sampling:
                end_indx = randint(clip_len, partition_len)
            start_indx = end_indx - clip_len
            indices = np.linspace(start_indx, end_indx, num=fpc)
            indices = np.clip(indices, start_indx, end_indx - 1).astype(np.int64)
            indices = indices + i * partition_len
        else:
            if not allow_clip_overlap:
                indices = np.linspace(0, partition_len, num=partition_len // fstp)
                indices = np.concatenate((indices, np.ones(fpc - partition_len // fstp) * partition_len))
                indices = np.clip(indices, 0, partition_len - 1).astype(np.int64)
                indices = indices + i * partition_len
            else:
                sample_len = min(clip_len, n) - 1
                indices = np.linspace(0, sample_len, num=sample_len // fstp)
                indices = np.concatenate((indices, np.ones(fpc - sample_len // fstp) * sample_len))
                indices = np.clip(indices, 0, sample_len - 1).astype(np.int64)
                clip_step = 0
                if n > clip_len:
                    clip_step = (n - clip_len) // (num_clips - 1)
                indices = indices + i * clip_step
        out.append(indices)
    return out


def shared_synth(tmp_path_factory, task: str = "motion", n: int = 24, frames: int = 16, **kw):
    """A synthetic dataset generated once per test session (shared by the data test modules)."""
    from vjepa_cli.data.synth import generate_synth

    out = tmp_path_factory.getbasetemp() / f"synth-{task}-{n}-{frames}-{'-'.join(f'{k}{v}' for k, v in sorted(kw.items()))}"
    return generate_synth(task, out, n=n, frames=frames, **kw)  # a second call reuses the existing videos
