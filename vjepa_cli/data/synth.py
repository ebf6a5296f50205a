"""Built-in synthetic video data (`vjepa synth`): real mp4/H.264 files, manifests and labels, so every
command can run with no downloaded data. Same arguments -> byte-identical files.

Layout of OUT_DIR: `videos/000000.mp4 ...`, `train.csv`, `val.csv` (our manifest format, paths relative),
`labels.json` (class name -> index) and `synth.json` (the settings and, per video, label / pair / event).
Class balance: video i has label i % num_classes (physics --impossible: pairs 2p, 2p+1 share the initial
conditions; the first is possible, label 0, the second impossible, label 1). The last `val_fraction` of
the videos form val.csv.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vjepa_cli.config.data import SYNTH_TASKS, SynthSpec
from vjepa_cli.data import synth_scenes as sc
from vjepa_cli.data.manifest import ManifestRow, write_labels, write_manifest
from vjepa_cli.data.media import write_video
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.runtime import stable_hash

FORMAT_VERSION = 3  # bump when the renderers or the encoder settings change (invalidates caches)


@dataclass(frozen=True)
class SynthResult:
    """What `generate_synth` wrote."""

    out_dir: Path
    train_manifest: Path
    val_manifest: Path
    labels_path: Path
    class_names: list[str]
    num_train: int
    num_val: int


def class_names(spec: SynthSpec) -> list[str]:
    if spec.task == "motion":
        return sc.motion_class_names(spec.directions, spec.speeds)
    if spec.task == "shapes":
        return [f"{c}-{s}" for s in sc.SHAPES for c in sc.COLOURS]
    if spec.impossible:
        return ["possible", "impossible"]
    return ["1-ball", "2-balls", "3-balls"]


def _render(spec: SynthSpec, i: int) -> tuple[np.ndarray, dict]:
    """Frames uint8 [T, S, S, 3] and metadata of video i; a pure function of (spec, i)."""
    task_id = SYNTH_TASKS.index(spec.task)
    if spec.task == "physics" and spec.impossible:
        pair, impossible = divmod(i, 2)
        rng = np.random.default_rng([spec.seed, task_id, 1, pair])  # same draws for both videos of a pair
        bg = sc.physics_background(rng, spec.size)
        n = int(rng.integers(1, 3))  # 1-2 balls: few collisions, so an impossible event stands out
        kind = sc.EVENTS[int(rng.integers(len(sc.EVENTS)))]
        tracks, radii, colours, vis, event, e_frame = sc.physics_tracks(
            rng, spec.size, spec.frames, n, kind if impossible else None)
        frames = sc.render_physics(spec.size, bg, tracks, radii, colours, vis)
        return frames, {"label": impossible, "pair": pair, "event": event, "event_frame": e_frame if impossible else None}
    rng = np.random.default_rng([spec.seed, task_id, 0, i])
    label = i % len(class_names(spec))
    if spec.task == "motion":
        frames = sc.render_motion(rng, label, spec.frames, spec.size, spec.directions, spec.speeds, spec.distractors)
    elif spec.task == "shapes":
        frames = sc.render_shapes(rng, label, spec.frames, spec.size)
    else:
        bg = sc.physics_background(rng, spec.size)
        tracks, radii, colours, vis, _, _ = sc.physics_tracks(rng, spec.size, spec.frames, label + 1, None)
        frames = sc.render_physics(spec.size, bg, tracks, radii, colours, vis)
    return frames, {"label": label}


def _make_one(args: tuple[SynthSpec, int, str]) -> dict:
    spec, i, path = args
    if not Path(path).exists():
        frames, meta = _render(spec, i)
        write_video(path, frames, spec.fps, crf=18, keyint=spec.fps)  # keyframe every second
    else:
        meta = _render_meta(spec, i)
    return meta


def _render_meta(spec: SynthSpec, i: int) -> dict:
    if spec.task == "physics" and spec.impossible:
        return _render(spec, i)[1]  # the event needs the simulation
    return {"label": i % len(class_names(spec))}


def generate_synth(task: str, out_dir: str | Path, n: int = 512, frames: int = 16, size: int = 64, fps: int = 8,
                   seed: int = 0, val_fraction: float = 0.2, impossible: bool = False, directions: int = 8,
                   speeds: int = 2, distractors: int = 1, workers: int = 1,
                   progress: Callable[[int], None] | None = None) -> SynthResult:
    """Write `n` synthetic videos of `task` ("motion" | "shapes" | "physics") with manifests into `out_dir`.

    Resumable: existing video files are kept (they are deterministic). `progress(k)` is called after
    each video with the number done so far. Physics with `impossible` needs an even `n` (pairs).
    """
    if task not in SYNTH_TASKS:
        raise VjepaError(f"unknown synth task '{task}'", "use one of " + ", ".join(SYNTH_TASKS))
    if task == "physics" and impossible and n % 2:
        raise VjepaError("--impossible makes possible/impossible pairs: --videos must be even")
    try:
        spec = SynthSpec(task=task, videos=n, frames=frames, size=size, fps=fps, seed=seed, val_fraction=val_fraction,
                         impossible=impossible, directions=directions, speeds=speeds, distractors=distractors)
    except ValueError as e:
        raise VjepaError(f"invalid synth settings: {e}") from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VjepaError(f"{out} exists and is not a folder")
    try:
        return _generate(spec, out, workers, progress)
    except OSError as e:
        raise VjepaError(f"cannot write synthetic videos to {out}: {e.strerror or e}") from None


def _generate(spec: SynthSpec, out: Path, workers: int = 1, progress: Callable[[int], None] | None = None) -> SynthResult:
    (out / "videos").mkdir(parents=True, exist_ok=True)
    marker = out / ".synth-spec.json"
    want = json.dumps([FORMAT_VERSION, dataclasses.asdict(spec)], sort_keys=True)
    if marker.is_file() and marker.read_text() != want and any((out / "videos").iterdir()):
        raise VjepaError(f"{out} holds synthetic videos made with other settings",
                         "choose another folder or delete this one")
    write_text_atomic(marker, want)
    paths = [str(out / "videos" / f"{i:06d}.mp4") for i in range(spec.videos)]
    jobs = [(spec, i, p) for i, p in enumerate(paths)]
    metas: list[dict] = []
    if workers > 1:
        spawn = multiprocessing.get_context("spawn")  # fresh interpreters, not forks: see data/preprocess.py
        with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            for meta in pool.map(_make_one, jobs, chunksize=4):
                metas.append(meta)
                if progress:
                    progress(len(metas))
    else:
        for job in jobs:
            metas.append(_make_one(job))
            if progress:
                progress(len(metas))
    n_val = min(int(round(spec.videos * spec.val_fraction)), spec.videos - 2)  # keep >= 2 for training
    if spec.task == "physics" and spec.impossible:
        n_val -= n_val % 2  # keep pairs together
    n_train = spec.videos - n_val
    rows = [ManifestRow(p, m["label"], spec.frames, float(spec.fps), spec.size, spec.size) for p, m in zip(paths, metas, strict=True)]
    names = class_names(spec)
    train = write_manifest(out / "train.csv", rows[:n_train])
    val = write_manifest(out / "val.csv", rows[n_train:]) if n_val else out / "val.csv"
    if not n_val:
        write_text_atomic(val, "path,label,num_frames,fps,width,height\n")
    labels = write_labels(out / "labels.json", {k: i for i, k in enumerate(names)})
    info = {"format": FORMAT_VERSION, "spec": dataclasses.asdict(spec), "class_names": names,
            "videos": [{"path": f"videos/{Path(p).name}", **m} for p, m in zip(paths, metas, strict=True)]}
    write_text_atomic(out / "synth.json", json.dumps(info, indent=1) + "\n")
    return SynthResult(out, train, val, labels, names, n_train, n_val)


def cache_root(cache_dir: str | None = None) -> Path:
    """`cache_dir`, else $VJEPA_CACHE, else ~/.cache/vjepa."""
    return Path(cache_dir or os.environ.get("VJEPA_CACHE") or Path.home() / ".cache" / "vjepa").expanduser()


def spec_hash(spec: SynthSpec) -> str:
    d = dataclasses.asdict(spec)
    d.pop("split")
    return stable_hash([FORMAT_VERSION, d], 12)


def ensure_synth(spec: SynthSpec, cache_dir: str | None = None, workers: int = 1,
                 progress: Callable[[int], None] | None = None) -> SynthResult:
    """The cached synthetic dataset for `spec` (<cache>/synth/<hash>), generated on first use.

    Generation goes to a private temporary folder renamed into place, so concurrent ranks are safe."""
    final = cache_root(cache_dir) / "synth" / spec_hash(spec)
    if not (final / "synth.json").is_file():
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _generate(spec, tmp, workers, progress)
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    names = class_names(spec)
    info = json.loads((final / "synth.json").read_text())
    n_train = sum(1 for _ in open(final / "train.csv")) - 1
    return SynthResult(final, final / "train.csv", final / "val.csv", final / "labels.json", names,
                       n_train, len(info["videos"]) - n_train)

