"""Speed of `vjepa extract` end to end (decode + resize/crop + normalise + encoder + write) against the bare
encoder forward and against `transformers`' VJEPA2Model encoder (skip_predictor=True) at the same size, in one
run; and the peak memory of extracting a 10-minute video.

    python benchmarks/bench_extract.py --arch vit_base --frames 16 --size 224 --batch 2 --clips 6
    python benchmarks/bench_extract.py --arch vit_small --frames 8 --size 128 --batch 4 --clips 16 --skip-long

The test video is generated here (moving noise texture, H.264 at 30 fps, keyframe every second, 320x240), long
enough for `--clips` windows of `--frames` frames at step 4. All three measurements see the same number of clips
in batches of `--batch`, fp32, torch.inference_mode, the machine's threads. FLOPs are analytic (see
bench_model.py); MFU is against the 2048^3 fp32 matmul peak measured in the same run.

Peak memory: a 10-minute 160x120 video is extracted by a tiny model in a subprocess that samples its resident
memory every 20 ms; growth = peak during extraction - resident after loading the model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import REF_PEAK, encoder_flops, gemm_peak  # noqa: E402

from vjepa_cli.config.extract import ExtractConfig, WindowConfig  # noqa: E402
from vjepa_cli.config.model import ModelConfig  # noqa: E402
from vjepa_cli.data.media import VideoWriter  # noqa: E402
from vjepa_cli.models import build_encoder  # noqa: E402
from vjepa_cli.models.load import save_model_file  # noqa: E402


def make_video(path: Path, frames: int, w: int = 320, h: int = 240, fps: int = 30, seed: int = 0) -> Path:
    """A moving noise texture (incompressible enough to cost real decode time)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (h * 2, w * 2, 3), dtype=np.uint8)
    with VideoWriter(path, w, h, fps, crf=23, keyint=fps, preset="veryfast") as vw:
        for i in range(frames):
            y, x = (i * 3) % h, (i * 5) % w
            vw.write(np.ascontiguousarray(tex[y:y + h, x:x + w]))
    return path


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_speed(args, tmp: Path) -> dict:
    import types

    from vjepa_cli.infer.extract import run_extract

    cfg = ModelConfig(arch=args.arch, img_size=args.size, num_frames=args.frames, pos_embed="rope")
    enc = build_encoder(cfg, torch.Generator().manual_seed(0)).eval()
    model_path = save_model_file(tmp / "model.safetensors", enc, None, cfg, {"source": "bench"})
    span = (args.frames - 1) * 4 + 1
    video = make_video(tmp / "bench.mp4", span + (args.clips - 1) * args.frames * 4)
    n_tok = (args.frames // 2) * (args.size // 16) ** 2
    flops = encoder_flops(cfg, n_tok)
    res = {"tokens": n_tok, "gflop_per_clip": flops / 1e9}

    x = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    nb = -(-args.clips // args.batch)

    def bare():
        with torch.inference_mode():
            for _ in range(nb):
                enc(x)

    res["bare_s"] = timed(bare, args.reps)
    model = types.SimpleNamespace(encoder=enc, config=cfg, metadata={}, predictor=None)
    wcfg = WindowConfig(frames=args.frames, frame_step=4, size=args.size)
    ecfg = ExtractConfig(window=wcfg, batch_size=args.batch, device="cpu", workers=args.workers, overwrite=True)

    def e2e():
        r = run_extract([video], tmp / "f.safetensors", ecfg, model_path=model_path, model=model)
        assert r.videos[0].status == "ok" and r.videos[0].windows == args.clips, r.videos

    res["e2e_s"] = timed(e2e, args.reps)
    try:
        import transformers
    except ImportError:
        transformers = None
    if transformers is not None:
        d, depth, heads, mlp = cfg.resolved_sizes()
        hf = transformers.VJEPA2Model(transformers.VJEPA2Config(
            hidden_size=d, num_hidden_layers=depth, num_attention_heads=heads, mlp_ratio=mlp, crop_size=args.size,
            frames_per_clip=args.frames, pred_num_hidden_layers=1, attn_implementation="sdpa")).eval()
        xt = x.permute(0, 2, 1, 3, 4).contiguous()

        def hf_fwd():
            with torch.inference_mode():
                for _ in range(nb):
                    hf(pixel_values_videos=xt, skip_predictor=True)

        res["hf_s"] = timed(hf_fwd, args.reps)
    return res


LONG_CHILD = r"""
import json, sys, threading, time, types
import torch
from vjepa_cli.config.extract import ExtractConfig, WindowConfig
from vjepa_cli.infer.extract import run_extract
import vjepa_cli

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

video, model_path, out = sys.argv[1:4]
m = vjepa_cli.load_model(model_path)
base = rss()
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.02)
t = threading.Thread(target=sample, daemon=True); t.start()
t0 = time.perf_counter()
cfg = ExtractConfig(window=WindowConfig(frames=16, frame_step=4), batch_size=8, workers=1, overwrite=True)
r = run_extract([video], out, cfg, model_path=model_path, model=m)
done.set(); t.join()
print(json.dumps({"windows": r.videos[0].windows, "status": r.videos[0].status, "seconds": time.perf_counter() - t0,
                  "rss_after_model_mb": base / 2**20, "peak_rss_mb": peak[0] / 2**20,
                  "growth_mb": (peak[0] - base) / 2**20}))
"""


def bench_long(tmp: Path, minutes: float) -> dict:
    cfg = ModelConfig(arch="vit_tiny", depth=2, img_size=64, num_frames=16)
    model_path = save_model_file(tmp / "tiny.safetensors", build_encoder(cfg), None, cfg, {"source": "bench"})
    t = time.perf_counter()
    video = make_video(tmp / "long.mp4", int(minutes * 60 * 30), w=160, h=120)
    gen_s = time.perf_counter() - t
    out = subprocess.run([sys.executable, "-c", LONG_CHILD, str(video), str(model_path), str(tmp / "long.safetensors")],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(video_minutes=minutes, video_mb=video.stat().st_size / 2**20, generate_s=gen_s)
    return res


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="vit_base")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--skip-long", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args(argv)
    load0 = os.getloadavg()[0]
    peak = gemm_peak()
    out: dict = {"args": vars(args), "threads": torch.get_num_threads(), "gemm_peak_gflops": peak}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_speed:
            r = bench_speed(args, tmp)
            out["speed"] = r
            print(f"\n{args.arch} {args.frames}x{args.size}, batch {args.batch}, {args.clips} clips, "
                  f"{r['tokens']} tokens, {r['gflop_per_clip']:.1f} GFLOP/clip, peak {peak:.0f} GFLOP/s")
            print(f"{'path':34s} {'median s':>9s} {'clips/s':>8s} {'GFLOP/s':>8s} {'MFU':>6s} {'vs bare':>8s}")
            bare = statistics.median(r["bare_s"])
            for name, key in (("bare encoder forward", "bare_s"), ("vjepa extract end to end", "e2e_s"),
                              ("transformers VJEPA2Model encoder", "hf_s")):
                if key not in r:
                    continue
                med = statistics.median(r[key])
                n_clips = -(-args.clips // args.batch) * args.batch if key != "e2e_s" else args.clips
                gf = r["gflop_per_clip"] * n_clips / med
                r[key.replace("_s", "")] = {"median_s": med, "clips_per_s": n_clips / med, "gflops": gf,
                                            "mfu": gf / peak, "mfu_ref_peak": gf / REF_PEAK}
                print(f"{name:34s} {med:9.3f} {n_clips / med:8.3f} {gf:8.1f} {gf / peak:6.2f} "
                      f"{(n_clips / med) / (-(-args.clips // args.batch) * args.batch / bare):8.2f}")
        if not args.skip_long:
            out["long_video"] = r = bench_long(tmp, args.long_minutes)
            print(f"\n{r['video_minutes']:.0f}-minute video ({r['video_mb']:.1f} MB): {r['windows']} windows in "
                  f"{r['seconds']:.1f} s; RSS after model {r['rss_after_model_mb']:.0f} MB, peak "
                  f"{r['peak_rss_mb']:.0f} MB, growth {r['growth_mb']:.0f} MB")
    out["loadavg_before_after"] = [load0, os.getloadavg()[0]]
    print("\n" + json.dumps(out))
    return out


if __name__ == "__main__":
    main()
