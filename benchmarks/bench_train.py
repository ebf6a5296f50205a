"""Throughput of the real pretraining loop (`run_pretrain`: data loading, masks, schedules, logging, metrics)
against the bare training step of `bench_model.py` on the same model, masks and batch.

    python benchmarks/bench_train.py                                 # vit_small 8x128 batch 4, official masks
    python benchmarks/bench_train.py --recipe tiny-cpu --arch vit_tiny --frames 16 --size 64 --batch 16

The loop reads synthetic mp4 videos (generated once into $VJEPA_CACHE) through the real DataLoader with
`--workers` processes. Loop step time = time between consecutive `on_step` callbacks (everything the loop does),
median over the timed steps (the first `--warmup` and the last, which writes a checkpoint, are excluded).
Overhead = 1 - loop clips/s / bare clips/s; MFU uses the analytic FLOP count of bench_model.py. On a 2-core
CPU the decoding workers compete with training for the same cores, so the data share shows up as overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import REF_PEAK, Trainer, encoder_flops, gemm_peak, predictor_flops  # noqa: E402

from vjepa_cli.config._load import load_recipe  # noqa: E402
from vjepa_cli.config.train import PretrainConfig  # noqa: E402
from vjepa_cli.data.masks import MaskCollator  # noqa: E402
from vjepa_cli.data.transforms import normalize_clips  # noqa: E402
from vjepa_cli.train.metrics import read_metrics  # noqa: E402
from vjepa_cli.train.pretrain import run_pretrain  # noqa: E402


def make_cfg(args) -> PretrainConfig:
    sets = [
        f"model.arch={args.arch}", "model.embed_dim=null", "model.depth=null", "model.num_heads=null",
        f"model.num_frames={args.frames}", f"model.img_size={args.size}", f"model.pred_depth={args.pred_depth}",
        f"model.pred_embed_dim={args.pred_dim}", "model.pred_num_heads=null", "model.pred_num_mask_tokens=2",
        f"mask.kind={args.mask}",
        f"data.synth={{task: motion, videos: {args.videos}, frames: {args.frames}, size: {args.size}, seed: 0}}",
        f"data.frames_per_clip={args.frames}", "data.frame_step=1", f"data.crop_size={args.size}",
        f"data.num_workers={args.workers}", f"batch_size={args.batch}", f"steps={args.warmup + args.steps + 1}",
        f"log_every={args.log_every}", "checkpoint_every=100000", "optim.warmup_steps=2", "dtype=fp32", "device=cpu",
    ]
    return load_recipe(PretrainConfig, args.recipe, sets + list(args.set))


def step_flops(cfg: PretrainConfig, ctx, tgt, batch: int) -> float:
    grid = cfg.grid
    f = encoder_flops(cfg.model, grid[0] * grid[1] * grid[2])
    for c, t in zip(ctx, tgt, strict=True):
        f += 3 * (encoder_flops(cfg.model, c.shape[1]) + predictor_flops(cfg.model, c.shape[1], t.shape[1]))
    return batch * f


def bench_bare(cfg: PretrainConfig, args) -> dict:
    tr = Trainer(cfg.model)
    collator = MaskCollator(cfg.mask, cfg.grid, seed=cfg.seed)
    clips = normalize_clips(torch.randint(0, 255, (args.batch, 3, args.frames, args.size, args.size),
                                          dtype=torch.uint8))
    times, flops = [], []
    for i in range(args.warmup + args.steps):
        ctx, tgt = collator.masks(i, args.batch)
        t = time.perf_counter()
        float(tr.step(clips, ctx, tgt))
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            flops.append(step_flops(cfg, ctx, tgt, args.batch))
    return {"times": times, "flops": flops}


def bench_loop(cfg: PretrainConfig, args) -> dict:
    stamps: list[float] = []
    collator = MaskCollator(cfg.mask, cfg.grid, seed=cfg.seed)
    with tempfile.TemporaryDirectory() as d:
        res = run_pretrain(cfg, Path(d) / "run", on_step=lambda s: stamps.append(time.perf_counter()))
        recs = read_metrics(Path(d) / "run" / "metrics.jsonl")
    # stamps[i] = end of step i + 1 (1-based); step s (>= 2) lasted stamps[s - 1] - stamps[s - 2].
    timed = range(max(2, args.warmup + 1), args.warmup + args.steps + 1)  # the last step (checkpoint) excluded
    times = [stamps[s - 1] - stamps[s - 2] for s in timed]
    flops = []
    for s in timed:
        ctx, tgt = collator.masks(s - 1, args.batch)  # what the loop drew for its 0-based step s - 1
        flops.append(step_flops(cfg, ctx, tgt, args.batch))
    wait = statistics.mean(r["data_wait"] for r in recs) if recs else float("nan")  # whole run
    return {"times": times, "flops": flops, "data_wait": wait, "final_loss": res.final_loss}


def summarise(r: dict, batch: int, peak: float) -> dict:
    med = statistics.median(r["times"])
    rate = statistics.median(f / t for f, t in zip(r["flops"], r["times"], strict=True)) / 1e9
    return {"step_median_s": med, "step_min_s": min(r["times"]), "clips_per_s": batch / med, "gflops": rate,
            "mfu": rate / peak, "mfu_ref327": rate / REF_PEAK,
            "gflop_per_clip": statistics.mean(r["flops"]) / batch / 1e9,
            **{k: v for k, v in r.items() if k not in ("times", "flops")}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="tiny-cpu", help="base recipe (model/mask/data fields are overridden)")
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--mask", default="multiblock", choices=["multiblock", "future", "mixed", "tube"])
    ap.add_argument("--pred-depth", type=int, default=12)
    ap.add_argument("--pred-dim", type=int, default=384)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    ap.add_argument("--videos", type=int, default=64, help="synthetic videos to read")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=10, help="metrics/monitor interval, as in the recipes")
    ap.add_argument("--set", action="append", default=[], help="extra recipe override key=value")
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = make_cfg(args)
    load0 = os.getloadavg()
    peak0 = gemm_peak()
    bare = summarise(bench_bare(cfg, args), args.batch, peak0)
    loop = summarise(bench_loop(cfg, args), args.batch, peak0)
    peak = statistics.median([peak0, gemm_peak()])
    overhead = 1.0 - loop["clips_per_s"] / bare["clips_per_s"]
    report = {"arch": args.arch, "frames": args.frames, "size": args.size, "batch": args.batch, "mask": args.mask,
              "workers": args.workers, "threads": args.threads, "torch": torch.__version__,
              "gemm_peak_gflops": peak, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
              "bare": bare, "loop": loop, "loop_overhead": overhead}
    print(f"{args.arch} {args.frames}x{args.size} batch {args.batch}, masks {args.mask}, {args.workers} workers, "
          f"{args.threads} threads, GEMM peak {peak:.0f} GFLOP/s, load {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{'':5} {'GFLOP/clip':>10} {'step med':>9} {'min':>7} {'clips/s':>8} {'GFLOP/s':>8} {'MFU':>5}")
    for name, r in (("bare", bare), ("loop", loop)):
        print(f"{name:5} {r['gflop_per_clip']:10.2f} {r['step_median_s']:9.3f} {r['step_min_s']:7.3f} "
              f"{r['clips_per_s']:8.2f} {r['gflops']:8.1f} {r['mfu']:5.2f}")
    print(f"loop overhead {overhead:+.1%} (data wait share {loop['data_wait']:.1%})")
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
