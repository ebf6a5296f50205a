"""Data pipeline throughput: `VideoClipDataset` (decode + transforms, uint8 out) against raw decord
`get_batch` for the very same frame indices, single process, one decoder thread.

Sources: synthetic motion videos (64 px, 16 frames) and 10 s / 30 fps moving-noise videos at 320x240 and
1280x720, encoded with x264 (veryfast, crf 23) at the default keyframe interval (250) and at 30 frames.
Raw and dataset reads alternate clip by clip so machine load hits both alike; process CPU time is
reported beside wall time because it is far less sensitive to other processes on a shared machine.
The raw side is `VideoReader` + `get_batch` + `.asnumpy()` for the dataset's own indices; the dataset
decodes a run of repeated indices (the padding of clips longer than the video: 4 distinct frames of 16 on
the synth source) once and shares decord's buffer instead of copying it, which raw decode does not.

A second table times each video backend's reader (decord, PyAV, torchcodec where it loads) on the same clips.

    python benchmarks/bench_data.py            # tables + one JSON line
    python benchmarks/bench_data.py --clips 40 --workdir /tmp/bench_data
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def make_noise_video(path: Path, width: int, height: int, keyint: int | None, seconds: int = 10, fps: int = 30) -> None:
    """Smooth noise drifting 2 px/frame (so the encoder has real motion to code)."""
    from vjepa_cli.data.media import VideoWriter

    if path.exists():
        return
    rng = np.random.default_rng(0)
    low = torch.from_numpy(rng.random((1, 3, height // 4, (width + 2 * seconds * fps) // 4)).astype(np.float32))
    big = torch.nn.functional.interpolate(low, scale_factor=4, mode="bilinear")[0].permute(1, 2, 0).numpy()
    big = (big * 255).astype(np.uint8)
    with VideoWriter(path, width, height, fps, crf=23, preset="veryfast", keyint=keyint, threads=0) as w:
        for t in range(seconds * fps):
            w.write(np.ascontiguousarray(big[:height, 2 * t:2 * t + width]))


def bench(manifest: Path, n_clips: int, crop: int, seed: int = 0, warmup: int = 3) -> dict:
    import decord

    from vjepa_cli.config.data import DataConfig
    from vjepa_cli.data.dataset import VideoClipDataset, sample_rng
    from vjepa_cli.data.sampling import clip_indices
    from vjepa_cli.data.transforms import train_transform

    cfg = DataConfig(frames_per_clip=16, frame_step=4, crop_size=crop, video_backend="decord", decode_threads=1)
    ds = VideoClipDataset(cfg, [manifest], train=True, seed=seed)
    rng = np.random.default_rng(seed)
    keys = [(int(s), int(rng.integers(len(ds)))) for s in range(n_clips + warmup)]
    t_raw = t_ds = t_tf = c_raw = c_ds = c_tf = 0.0
    distinct = 0
    for step, index in keys[n_clips:]:  # untimed: first calls pay one-off costs (lazy imports, kernel setup)
        ds[(step, index)]
        decord.VideoReader(ds.rows[index].path, num_threads=1, ctx=decord.cpu(0)).get_batch([0]).asnumpy()
    for k, (step, index) in enumerate(keys[:n_clips]):
        path = ds.rows[index].path
        for which in ("raw", "dataset") if k % 2 else ("dataset", "raw"):  # alternate who goes first
            t0, c0 = time.perf_counter(), time.process_time()
            if which == "raw":
                vr = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
                (idx,) = clip_indices(len(vr), 16, 4, 1, sample_rng(seed, step, index))  # the dataset's draw
                raw = vr.get_batch(list(idx)).asnumpy()
                del vr
                t_raw += time.perf_counter() - t0
                c_raw += time.process_time() - c0
            else:
                sample = ds[(step, index)]
                t_ds += time.perf_counter() - t0
                c_ds += time.process_time() - c0
        assert raw.shape[0] == 16 and sample["clip"].shape == (3, 16, crop, crop) and not sample["failures"]
        distinct += 1 + int((idx[1:] != idx[:-1]).sum())
        t0, c0 = time.perf_counter(), time.process_time()
        train_transform(raw, crop, cfg.random_resize_scale, cfg.random_resize_aspect_ratio, True, rng)
        t_tf += time.perf_counter() - t0
        c_tf += time.process_time() - c0
    return {"clips": n_clips, "raw_clips_per_s": n_clips / t_raw, "dataset_clips_per_s": n_clips / t_ds,
            "ratio": t_raw / t_ds, "cpu_ratio": c_raw / c_ds, "transform_ms": 1000 * t_tf / n_clips,
            "raw_cpu_ms": 1000 * c_raw / n_clips, "dataset_cpu_ms": 1000 * c_ds / n_clips,
            "transform_cpu_ms": 1000 * c_tf / n_clips, "distinct_frames": distinct / n_clips}


def bench_backends(manifest: Path, n_clips: int, seed: int = 0) -> dict:
    """Clips/s of each video backend's reader (`open_video(path, backend).get_batch`) for the same 16-frame
    clips (frame step 4), one decoder thread, backends taking turns clip by clip; a backend that cannot be
    used here is reported with the reason instead of a speed."""
    from vjepa_cli.data.dataset import sample_rng
    from vjepa_cli.data.manifest import read_manifest
    from vjepa_cli.data.media import check_backend, open_video
    from vjepa_cli.data.sampling import clip_indices
    from vjepa_cli.errors import VjepaError

    rows = read_manifest(manifest)
    usable, out = [], {}
    for backend in ("decord", "pyav", "torchcodec"):
        try:
            check_backend(backend)
            usable.append(backend)
        except VjepaError as e:
            out[backend] = {"usable": False, "reason": str(e)}
    secs = dict.fromkeys(usable, 0.0)
    for k in range(n_clips + 1):  # clip 0 is warmup
        path = rows[k % len(rows)].path
        order = usable[k % len(usable):] + usable[:k % len(usable)]
        for backend in order:
            t0 = time.perf_counter()
            r = open_video(path, backend, threads=1)
            (idx,) = clip_indices(r.num_frames, 16, 4, 1, sample_rng(seed, k, 0))
            frames = r.get_batch(list(idx))
            r.close()
            if k:
                secs[backend] += time.perf_counter() - t0
        assert frames.shape[0] == 16
    out.update({b: {"usable": True, "clips_per_s": n_clips / t} for b, t in secs.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=30, help="clips per source")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vjepa_bench_data"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    from vjepa_cli.data.manifest import ManifestRow, write_manifest
    from vjepa_cli.data.synth import generate_synth

    wd = args.workdir
    wd.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    sources = []
    synth = generate_synth("motion", wd / "synth", n=64, frames=16, size=64)
    sources.append(("synth motion 64x64, 16 fr", synth.train_manifest, 64))
    for (w, h), keyint in [((320, 240), None), ((320, 240), 30), ((1280, 720), None), ((1280, 720), 30)]:
        name = f"noise_{h}p_g{keyint or 250}.mp4"
        make_noise_video(wd / name, w, h, keyint)
        m = write_manifest(wd / f"{name}.csv", [ManifestRow(str(wd / name), 0)])
        sources.append((f"{w}x{h}, GOP {keyint or 250}, 300 fr", m, 224))
    results = []
    for label, manifest, crop in sources:
        r = bench(manifest, args.clips, crop)
        r.update(source=label, crop=crop)
        results.append(r)
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before}, after {load_after}; cores: {os.cpu_count()}\n")
    print("| source | crop | raw decord get_batch (clips/s) | VideoClipDataset (clips/s) | dataset / raw (wall) "
          "| dataset / raw (CPU time) | raw / dataset CPU (ms/clip) | transforms alone, 16 frames (CPU ms/clip) "
          "| distinct frames / clip |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['source']} | {r['crop']} | {r['raw_clips_per_s']:.1f} | {r['dataset_clips_per_s']:.1f} | "
              f"{100 * r['ratio']:.0f}% | {100 * r['cpu_ratio']:.0f}% | {r['raw_cpu_ms']:.2f} / "
              f"{r['dataset_cpu_ms']:.2f} | {r['transform_cpu_ms']:.2f} | {r['distinct_frames']:.1f} |")
    backends = {label: bench_backends(manifest, max(4, args.clips // 2)) for label, manifest, _ in sources[1:3]}
    print("\n| source | " + " | ".join(f"{b} (clips/s)" for b in ("decord", "pyav", "torchcodec")) + " |")
    print("|---|---|---|---|")
    for label, res in backends.items():
        cells = [f"{r['clips_per_s']:.1f}" if r["usable"] else "not usable here" for r in
                 (res[b] for b in ("decord", "pyav", "torchcodec"))]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for b, r in next(iter(backends.values())).items():
        if not r["usable"]:
            print(f"{b}: {r['reason']}")
    print(json.dumps({"bench": "data", "load_before": load_before, "load_after": load_after, "results": results,
                      "backends": backends}))


if __name__ == "__main__":
    main()
