"""Features for a folder of real-sized videos, end to end: `vjepa extract` against the `transformers` recipe a user
would write (PyAV decode, `VJEPA2VideoProcessor`, `VJEPA2Model`, one video at a time), same weights, same windows.

    python benchmarks/bench_folder.py                       # 20 clips of 10 s at 1280x720, vit_small 16x224
    python benchmarks/bench_folder.py --small               # 3 clips of 2 s at 320x180, vit_small 8x128
    python benchmarks/bench_folder.py --clips 5 --seconds 4 --height 360 --reps 3 --workdir /tmp/bf
    python benchmarks/bench_folder.py --dtype bf16          # both models in bf16 (`vjepa extract --dtype bf16`)
    python benchmarks/bench_folder.py --hf-malloc tuned     # the recipe with the malloc settings `vjepa` uses too
    python benchmarks/bench_folder.py --jobs 1,2            # ours as one process and as `vjepa extract -j 2`

The folder (H.264, natural-ish motion, see folder_make.py) and the model (a random-init `transformers` VJEPA2Model
converted to our file by `vjepa convert`'s library function) are made once and cached in `--workdir`. Each run is
its own process (so its peak resident memory is its own), with the model loaded before the clock starts; the two
sides alternate (ours, hf, hf, ours, ...) so the load of a shared machine hits both alike. Reported: median seconds
of each side, the ratio, peak resident memory, and where the time goes (folder_sides.py times each stage). The
features of both sides are compared per window (max abs difference, cosine), and one window's pixels are compared
to explain the difference (the centre crop: see `pixel_check`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from folder_make import make_folder, make_models  # noqa: E402

# glibc's environment form of what `vjepa` sets at start-up (vjepa_cli/allocator.py), for `--hf-malloc tuned`
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def side_name(jobs: int) -> str:
    """Our side's name for `vjepa extract -j jobs` ("ours" for one process, as before)."""
    return "ours" if jobs == 1 else f"ours-j{jobs}"


def run_side(side: str, videos: Path, model: Path, out: Path, dtype: str = "fp32", hf_malloc: str = "default",
             jobs: int = 1) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if side == "hf" and hf_malloc == "tuned":
        env.update(TUNED_MALLOC)
    p = subprocess.run([sys.executable, str(HERE / "folder_sides.py"), side, str(videos), str(model), str(out), dtype,
                        str(jobs)], capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    name = side_name(jobs) if side == "ours" else side
    if p.returncode or not lines:
        return {"side": name, "error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    return {**json.loads(lines[-1]), "side": name}


def compare_features(ours: Path, hf: Path) -> dict:
    """Per window, ours against the recipe: max abs difference and cosine; timestamps must match."""
    import torch
    from safetensors.torch import load_file

    diffs, coss, n = [], [], 0
    for f in sorted(ours.glob("*.safetensors")):
        a, b = load_file(str(f)), load_file(str(hf / f.name))
        assert torch.allclose(a["timestamps"], b["timestamps"]), f"windows differ for {f.name}"
        diffs.append((a["features"] - b["features"]).abs().max().item())
        coss.append(torch.nn.functional.cosine_similarity(a["features"], b["features"], dim=-1).min().item())
        n += len(a["features"])
    return {"videos": len(diffs), "windows": n, "max_abs_diff": max(diffs), "min_cosine": min(coss),
            "feature_rms": float(load_file(str(f))["features"].pow(2).mean().sqrt())}


def pixel_check(videos: Path, hf_dir: Path, model_path: Path) -> dict:
    """One window of the first video through both preprocessings and both encoders.

    Both resize the short side to size*256/224 with the same antialiased bilinear uint8 kernel and crop the
    centre with the offset floored; the one difference is the long side, rounded by us and truncated by the
    processor: 1280x720 -> 455 wide on both (identical pixels), 320x180 -> 260 vs 259 at short side 146.
    Resizing to the processor's size our way reproduces its pixels, and on the same pixels the two encoders
    agree to float rounding."""
    import numpy as np
    import torch
    from folder_sides import import_torchvision, read_video_pyav, user_windows

    import_torchvision()
    from transformers import VJEPA2Model, VJEPA2VideoProcessor

    import vjepa_cli
    from vjepa_cli.data.media import crop_views
    from vjepa_cli.data.transforms import normalize_clips, resize_frames, to_tchw

    path = sorted(videos.glob("*.mp4"))[0]
    import av

    with av.open(str(path)) as c:
        w0 = user_windows(c.streams.video[0].frames)[0]
    frames = read_video_pyav(path, set(w0))
    clip = np.stack([frames[i] for i in w0])  # (T, H, W, 3)
    hf = VJEPA2Model.from_pretrained(hf_dir).eval()
    size = hf.config.crop_size
    short = int(size * 256 / 224)
    px_hf = VJEPA2VideoProcessor(crop_size=size)([clip], return_tensors="pt")["pixel_values_videos"]  # (1, T, 3, S, S)
    px_hf = px_hf.permute(0, 2, 1, 3, 4)  # (1, 3, T, S, S)
    ours = torch.from_numpy(crop_views(clip, short, size, 1))  # (1, T, S, S, 3)
    px_ours = normalize_clips(ours, channels_last=True)
    H, W = clip.shape[1:3]
    new = (short, int(short * W / H)) if H <= W else (int(short * H / W), short)  # the processor's resized size
    r = resize_frames(to_tchw(clip), new)  # (T, 3, h, w)
    h, w = r.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    same = r[..., top:top + size, left:left + size].permute(0, 2, 3, 1)[None]  # (1, T, S, S, 3)
    px_same = normalize_clips(same, channels_last=True)
    m = vjepa_cli.load_model(model_path)
    with torch.inference_mode():
        z_ours = m.encoder(px_ours).mean(1)
        z_hf = hf.get_vision_features(px_ours.permute(0, 2, 1, 3, 4)).mean(1)
    ow = round(W * short / H) if H <= W else short
    return {"resized_width_ours_hf": [ow, w],
            "pixels_max_abs_diff": (px_ours - px_hf).abs().max().item(),
            "pixels_max_abs_diff_same_resize_crop": (px_same - px_hf).abs().max().item(),
            "same_pixels_features_max_abs_diff": (z_ours - z_hf).abs().max().item()}


def summarise(runs: list[dict], side: str) -> dict:
    rs = [r for r in runs if r["side"] == side and "error" not in r]
    if not rs:
        return {"error": next((r["error"] for r in runs if r["side"] == side), "did not run")}
    stages = {k: statistics.median(r["stages"].get(k, 0.0) for r in rs) for k in rs[0]["stages"]}
    return {"median_s": statistics.median(r["total_s"] for r in rs), "all_s": [r["total_s"] for r in rs],
            "windows": rs[0]["windows"], "stages_s": stages, "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "rss_after_load_mb": statistics.median(r["rss_after_load_mb"] for r in rs),
            **({"processor": rs[0]["processor"]} if "processor" in rs[0] else {})}


def print_table(res: dict) -> None:
    a = res["args"]
    print(f"\n{a['clips']} clips x {a['seconds']:g} s at {res['video_size']}, {a['arch']} {a['frames']}x{a['size']}, "
          f"{res['windows']} windows, {a['reps']} interleaved runs per side, load {res['load_before']:.1f} -> "
          f"{res['load_after']:.1f}")
    print(f"{'side':26s} {'median s':>9s} {'windows/s':>10s} {'peak RSS MB':>12s}  stages (median s)")
    named = [(side_name(j), "vjepa extract (library)" + (f" -j {j}" if j > 1 else "")) for j in res["jobs"]]
    for side, name in [*named, ("hf", "transformers recipe")]:
        s = res[side]
        if "error" in s:
            print(f"{name:26s} failed: {s['error']}")
            continue
        st = ", ".join(f"{k} {v:.2f}" for k, v in s["stages_s"].items())
        print(f"{name:26s} {s['median_s']:9.2f} {s['windows'] / s['median_s']:10.2f} {s['peak_rss_mb']:12.0f}  {st}")
    for j in res["jobs"]:
        if f"speedup_{side_name(j)}" in res:
            print(f"speed-up (hf / {side_name(j)}): {res[f'speedup_{side_name(j)}']:.2f}x")
    for j in res["jobs"]:
        if f"features_{side_name(j)}" in res:
            f = res[f"features_{side_name(j)}"]
            print(f"features of {side_name(j)}: max abs diff {f['max_abs_diff']:.2e}, min cosine "
                  f"{f['min_cosine']:.6f} (feature rms {f['feature_rms']:.3f})")
    if "pixels" in res:
        print(f"pixels: {json.dumps(res['pixels'])}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--height", type=int, default=720, help="frame height (16:9)")
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--frames", type=int, default=16, help="the model's clip length (windows stay the defaults)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=3, help="runs per side")
    ap.add_argument("--small", action="store_true", help="3 clips of 2 s at 320x180, vit_small 8x128, 1 run")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vjepa-bench-folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="both models' weights and compute")
    ap.add_argument("--jobs", default="1", help="our side's processes (`vjepa extract -j`), comma-separated: "
                                                 "1,2 runs both, interleaved with the recipe")
    ap.add_argument("--hf-malloc", choices=["default", "tuned"], default="default",
                    help="tuned: give the recipe's process the malloc thresholds `vjepa` sets for itself")
    args = ap.parse_args(argv)
    if args.small:
        args.clips, args.seconds, args.height, args.frames, args.size, args.reps = 3, 2.0, 180, 8, 128, 1
    videos = make_folder(args.workdir, args.clips, args.seconds, args.height)
    hf_dir, ours_model = make_models(args.workdir, args.arch, args.frames, args.size)
    h = args.height - args.height % 2
    res: dict = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                 "video_size": f"{int(round(h * 16 / 9 / 2)) * 2}x{h}", "load_before": os.getloadavg()[0]}
    runs = []
    out = args.workdir / "out"
    shutil.rmtree(out, ignore_errors=True)  # features of an earlier run of another folder would be compared too
    res["jobs"] = jobs = [int(j) for j in args.jobs.split(",")]
    order = [("ours", j) for j in jobs] + [("hf", 1)]
    for i in range(args.reps):
        for side, j in (order if i % 2 == 0 else order[::-1]):
            model, name = (ours_model, side_name(j)) if side == "ours" else (hf_dir, "hf")
            runs.append(run_side(side, videos, model, out / name, args.dtype, args.hf_malloc, j))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    res["load_after"] = os.getloadavg()[0]
    res["hf"] = summarise(runs, "hf")
    for j in jobs:
        res[side_name(j)] = summarise(runs, side_name(j))
    first = side_name(jobs[0])
    res["windows"] = res[first].get("windows", 0)
    res["runs"] = runs
    for j in jobs:
        ours = side_name(j)
        if "error" not in res[ours] and "error" not in res["hf"]:
            res[f"speedup_{ours}"] = res["hf"]["median_s"] / res[ours]["median_s"]
            res[f"features_{ours}"] = compare_features(out / ours, out / "hf")
    if f"speedup_{first}" in res:
        res["speedup"], res["features"] = res[f"speedup_{first}"], res[f"features_{first}"]
        try:
            res["pixels"] = pixel_check(videos, hf_dir, ours_model)
        except Exception as e:  # e.g. no torchvision in this process: the timings still stand
            res["pixels"] = {"error": f"{type(e).__name__}: {e}"}
    print_table(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print("\n" + json.dumps(res))
    return res


if __name__ == "__main__":
    main()
