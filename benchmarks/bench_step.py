"""One V-JEPA training step with the mask pairs packed into one encoder and one predictor pass, against one pass
per mask pair (`mask_batching: packed` vs `per_mask`), and the peak resident memory of each.

    python benchmarks/bench_step.py                                   # vit_small 8x128 batch 4, official masks
    python benchmarks/bench_step.py --arch vit_base --frames 16 --size 224 --batch 2 --repeats 3
    python benchmarks/bench_step.py --profile 25                      # + the top ops of one packed step

The step is the library's (`vjepa_cli.train.jepa`): target features under no_grad, `JepaModel` forward (the
context encoder and the predictor), backward, fused AdamW, EMA (`ema_update_`, one foreach lerp); predictor
12 x 384, fp32, official multi-block masks (8 x 0.15 and 2 x 0.7 blocks, two pairs of different lengths) drawn
before the timed region. Both variants hold the same initial weights and see the same masks and clips; they run
interleaved in one process (A B, then B A, ...), after `--warmup` untimed steps each, and the table gives the
median of `--repeats` timed steps each and their ratio.

Memory: each variant runs again alone in a fresh subprocess (`--memory VARIANT`: warmup + 2 steps); the table
gives that process's peak resident set (VmHWM from /proc/self/status; `getrusage` `ru_maxrss` would include the
parent's peak, inherited across fork + exec) and its growth over the resident set measured just before the
first step (models, optimizer and inputs already built), i.e. what the step itself adds at its peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.config.train import OptimConfig
from vjepa_cli.data.masks import MaskCollator
from vjepa_cli.models import build_encoder, build_predictor
from vjepa_cli.train.ema import ema_update_, make_target
from vjepa_cli.train.jepa import MASK_BATCHING, JepaModel, build_optimizer, target_features

CPU = torch.device("cpu")


class Step:
    """The training step of `vjepa pretrain` (without data loading, clipping and logging) for one variant."""

    def __init__(self, cfg: ModelConfig, mask_batching: str):
        gen = torch.Generator().manual_seed(0)
        self.encoder = build_encoder(cfg, generator=gen).train()
        self.predictor = build_predictor(cfg, generator=gen).train()
        self.target = make_target(self.encoder)
        self.jepa = JepaModel(self.encoder, self.predictor, mask_batching=mask_batching)
        self.opt = build_optimizer(self.jepa, OptimConfig(), CPU)

    def __call__(self, clips: torch.Tensor, ctx: list, tgt: list, grid: tuple[int, int, int]) -> torch.Tensor:
        h = target_features(self.target, clips)  # (B, N, D)
        loss = self.jepa(clips, h, ctx, tgt, grid)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        ema_update_(self.target, self.encoder, 0.998)
        return loss.detach()


def make_config(args) -> ModelConfig:
    return ModelConfig(arch=args.arch, num_frames=args.frames, img_size=args.size, pos_embed=args.pos,
                       pred_depth=args.pred_depth, pred_embed_dim=args.pred_dim)


def inputs(cfg: ModelConfig, args):
    grid = cfg.grid(args.frames, args.size)
    collator = MaskCollator(MaskConfig(), grid, seed=args.seed)
    clips = torch.randn(args.batch, cfg.in_chans, args.frames, args.size, args.size,
                        generator=torch.Generator().manual_seed(args.seed))
    return grid, collator, clips


def rss_mib() -> float:
    """The current resident set, MiB (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory(cfg: ModelConfig, args) -> dict:
    """Peak resident set of this process over warmup + 2 steps of `args.memory` (run in a fresh process)."""
    step = Step(cfg, args.memory)
    grid, collator, clips = inputs(cfg, args)
    masks = [collator.masks(i, args.batch) for i in range(args.warmup + 2)]
    before = rss_mib()
    for ctx, tgt in masks:
        float(step(clips, ctx, tgt, grid))
    peak = vm_hwm_mib()
    return {"variant": args.memory, "peak_rss_mib": peak, "rss_before_steps_mib": before,
            "step_growth_mib": peak - before,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # see vm_hwm_mib


def vm_hwm_mib() -> float:
    """This process's peak resident set, MiB: VmHWM of /proc/self/status. Not `getrusage().ru_maxrss`, which
    a child started by fork + exec inherits from its parent (it would report the timing process's peak)."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024  # kB


def time_steps(cfg: ModelConfig, args) -> dict:
    steps = {v: Step(cfg, v) for v in MASK_BATCHING}
    grid, collator, clips = inputs(cfg, args)
    times: dict[str, list[float]] = {v: [] for v in steps}
    lengths = []
    for i in range(args.warmup + args.repeats):
        ctx, tgt = collator.masks(i, args.batch)
        order = list(steps) if i % 2 == 0 else list(reversed(steps))
        for v in order:
            t = time.perf_counter()
            float(steps[v](clips, ctx, tgt, grid))
            if i >= args.warmup:
                times[v].append(time.perf_counter() - t)
        if i >= args.warmup:
            lengths.append([[int(c.shape[1]), int(t_.shape[1])] for c, t_ in zip(ctx, tgt, strict=True)])
    out = {"times": times, "median_s": {v: statistics.median(t) for v, t in times.items()},
           "ctx_tgt_tokens": lengths}
    if args.profile:
        ctx, tgt = collator.masks(0, args.batch)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            float(steps["packed"](clips, ctx, tgt, grid))
        out["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile)
    return out


def memory_subprocess(variant: str, argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *argv, "--memory", variant], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pos", choices=["sincos", "rope"], default="sincos")
    ap.add_argument("--pred-depth", type=int, default=12)
    ap.add_argument("--pred-dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS", help="profile one extra packed step")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--memory", choices=MASK_BATCHING, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = make_config(args)
    if args.memory:
        res = memory(cfg, args)
        print(json.dumps(res))
        return res
    load0 = os.getloadavg()
    res = time_steps(cfg, args)
    child_argv = [a for a in argv if a not in ("--no-memory",)]
    mem = {} if args.no_memory else {v: memory_subprocess(v, _strip(child_argv)) for v in MASK_BATCHING}
    med = res["median_s"]
    report = {"arch": args.arch, "frames": args.frames, "size": args.size, "batch": args.batch, "pos": args.pos,
              "pred": [args.pred_depth, args.pred_dim], "threads": args.threads, "torch": torch.__version__,
              "repeats": args.repeats, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
              "step_median_s": med, "ratio_packed_per_mask": med["packed"] / med["per_mask"],
              "times": res["times"], "ctx_tgt_tokens": res["ctx_tgt_tokens"], "memory": mem}
    print(f"{args.arch} {args.frames}x{args.size} batch {args.batch}, {args.pos}, predictor {args.pred_depth} x "
          f"{args.pred_dim}, fp32, {args.threads} threads, {args.repeats} repeats; load {load0[0]:.1f} -> "
          f"{report['loadavg_after'][0]:.1f}; context/target tokens per mask pair (first step): "
          f"{res['ctx_tgt_tokens'][0]}")
    print(f"{'variant':9} {'step med s':>10} {'min s':>7} {'ratio':>6} {'peak RSS MiB':>12} {'step +MiB':>9}")
    for v in MASK_BATCHING:
        m = mem.get(v, {})
        print(f"{v:9} {med[v]:10.3f} {min(res['times'][v]):7.3f} {med[v] / med['per_mask']:6.3f} "
              f"{m.get('peak_rss_mib', float('nan')):12.0f} {m.get('step_growth_mib', float('nan')):9.0f}")
    if "profile" in res:
        print(res["profile"])
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def _strip(argv: list[str]) -> list[str]:
    """The child's argv: without --json PATH and --profile ROWS."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--json", "--profile"):
            skip = True
            continue
        if a.startswith(("--json=", "--profile=")):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    main()
