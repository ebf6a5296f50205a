"""Shared parts of the side-by-side benchmarks (`bench_official.py`, `bench_pyjepa.py`, `bench_hf_encoder.py`).

- `OurStep`: one V-JEPA training step of ours, built from the objects `PretrainTrainer` uses (`JepaModel`,
  `target_features`, `build_optimizer`, `make_target` / `ema_update_`), so the benchmarks time whatever the
  trainer runs. Gradient clipping is left out: the official step skips it during warmup.
- `interleaved`: warm-up, then repeats that alternate the order of the sides (A B, B A, ...), so a change in the
  machine's load hits both sides alike; the ratio of medians is the figure to quote.
- `child_memory` / `peak_rss`: peak resident memory of one side, measured in a process of its own (the other
  side's allocations and the allocator's cached pages would otherwise count).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import encoder_flops, predictor_flops  # noqa: E402

from vjepa_cli.config.mask import MaskConfig  # noqa: E402
from vjepa_cli.config.model import ModelConfig  # noqa: E402
from vjepa_cli.config.train import OptimConfig  # noqa: E402
from vjepa_cli.data.masks import MaskCollator  # noqa: E402
from vjepa_cli.models import build_encoder, build_predictor, cpu_gemm  # noqa: E402
from vjepa_cli.train.ema import ema_update_, make_target  # noqa: E402
from vjepa_cli.train.jepa import JepaModel, build_optimizer, target_features  # noqa: E402

MOMENTUM = 0.998  # EMA momentum of both sides (official start value)
LR, WD = 1e-4, 0.04  # fixed learning rate and weight decay of both sides (no schedules in a benchmark)


class OurStep:
    """Our training step: targets (no grad, layer-normed), `JepaModel` (context encoder + predictor per mask,
    L1 loss), backward, fused AdamW from `build_optimizer`, EMA by `ema_update_`; returns the loss."""

    def __init__(self, cfg: ModelConfig, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.cfg = cfg
        self.encoder = build_encoder(cfg, g).train()
        self.predictor = build_predictor(cfg, g).train()
        self.target = make_target(self.encoder)
        self.jepa = JepaModel(self.encoder, self.predictor)
        self.opt = build_optimizer(self.jepa, OptimConfig(start_lr=LR, weight_decay=WD), torch.device("cpu"))
        self.grid = cfg.grid()

    def load(self, encoder_sd: dict, predictor_sd: dict) -> None:
        """Same weights as another implementation (official names): encoder, its EMA copy and the predictor."""
        for m, sd in ((self.encoder, encoder_sd), (self.target, encoder_sd), (self.predictor, predictor_sd)):
            own = m.state_dict()
            missing = [k for k in own if k not in sd]
            if missing:
                raise KeyError(f"{type(m).__name__}: no weights for {missing[:5]}")
            m.load_state_dict({k: sd[k] for k in own}, strict=True)

    def __call__(self, clips: Tensor, ctx: list[Tensor], tgt: list[Tensor]) -> float:
        h = target_features(self.target, clips)  # (B, N, D)
        loss = self.jepa(clips, h, ctx, tgt, self.grid)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        ema_update_(self.target, self.encoder, MOMENTUM)
        return float(loss.detach())

    def n_params(self) -> int:
        return sum(p.numel() for p in self.jepa.parameters())


def interleaved(sides: dict[str, Callable[[int], object]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of `repeats` calls of each side, alternating the order each repeat; `fn(i)` gets the iteration
    (so both sides see the same masks at the same i)."""
    names = list(sides)
    for i in range(warmup):
        for n in names if i % 2 == 0 else names[::-1]:
            sides[n](i)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            sides[n](warmup + r)
            times[n].append(time.perf_counter() - t)
    return times


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `/proc/self/clear_refs` = 5); False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss(fn: Callable[[int], object], n: int) -> dict:
    """Run `fn(0..n-1)` in this process (already built) -> resident memory before, peak during, growth, MB."""
    base = _status_kb("VmRSS") / 1024
    reset = reset_peak_rss()
    for i in range(n):
        fn(i)
    peak = _status_kb("VmHWM") / 1024
    return {"rss_built_mb": round(base, 1), "peak_rss_mb": round(peak, 1), "growth_mb": round(peak - base, 1),
            "peak_reset": reset}


def child_memory(script: str, argv: list[str]) -> dict:
    """Run `python script argv` (a child mode printing one JSON line last) -> that JSON, or {"error": ...}."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return json.loads(lines[-1])


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": [round(t, 4) for t in times]}


def ratio(ours: list[float], theirs: list[float]) -> float:
    """ours / theirs of the medians (< 1: ours faster)."""
    return statistics.median(ours) / statistics.median(theirs)


def paired(ours: list[float], theirs: list[float]) -> dict:
    """Ratios of the repeats run back to back (ours[i] / theirs[i]): their median and range show how much the
    machine's load moved the ratio."""
    rs = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}


# ---------------------------------------------------------------- training-step comparisons
def add_step_args(ap: argparse.ArgumentParser) -> None:
    """The options every training-step comparison takes (defaults: ViT-S 8x128, batch 4)."""
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per side, >= 1 (the first checks the loss)")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per side (median reported)")
    ap.add_argument("--mem-steps", type=int, default=2, help="steps after warm-up in each memory process")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)


def step_argv(args) -> list[str]:
    """`add_step_args` options as a command line (for the memory child processes)."""
    return ["--arch", args.arch, "--frames", str(args.frames), "--size", str(args.size), "--batch", str(args.batch),
            "--seed", str(args.seed), "--threads", str(args.threads), "--mem-steps", str(args.mem_steps)]


def step_config(args) -> ModelConfig:
    """V-JEPA 1 geometry: sin-cos positions with uniform_power, predictor 12 x 384 with the encoder's heads."""
    return ModelConfig(arch=args.arch, num_frames=args.frames, img_size=args.size, pos_embed="sincos",
                       uniform_power=True, pred_depth=12, pred_embed_dim=384, pred_num_heads=None)


def step_inputs(cfg: ModelConfig, args, n: int, same_context_length: bool = False):
    """Clips (B, 3, T, S, S) and the official multi-block masks of iterations 0..n-1 ([(B, Kc)], [(B, Kt)]).

    `same_context_length`: cut every context mask of an iteration to the shortest one (their highest ids go), for
    implementations that stack the context encodings of all masks into one tensor."""
    clips = torch.randn(args.batch, 3, args.frames, args.size, args.size, generator=torch.Generator().manual_seed(0))
    collator = MaskCollator(MaskConfig(), cfg.grid(), seed=args.seed)
    masks = [collator.masks(i, args.batch) for i in range(n)]
    if same_context_length:
        masks = [([c[:, :min(m.shape[1] for m in ctx)] for c in ctx], tgt) for ctx, tgt in masks]
    return clips, masks


def tokens(masks) -> list[list[int]]:
    """[[Kc, Kt]] per mask pair of one iteration's masks."""
    return [[c.shape[1], t.shape[1]] for c, t in zip(*masks, strict=True)]


def step_gflop(cfg: ModelConfig, masks, batch: int) -> float:
    """Analytic GFLOP of one step (bench_model's count) for the masks of one iteration."""
    t, h, w = cfg.grid()
    f = encoder_flops(cfg, t * h * w)
    for c, m in zip(*masks, strict=True):
        f += 3 * (encoder_flops(cfg, c.shape[1]) + predictor_flops(cfg, c.shape[1], m.shape[1]))
    return batch * f / 1e9


def compare_steps(args, name: str, ours: OurStep, theirs, clips: Tensor, masks: list, script: str,
                  child_argv: list[str]) -> dict:
    """Step 0 on both (same weights: same loss), interleaved timing, then each side's peak memory in a child
    process (`script child_argv --memory-child SIDE`)."""
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (the first warm-up step checks the loss)")
    load0 = loadavg()
    if ours.n_params() != theirs.n_params():
        raise SystemExit(f"parameter counts differ: ours {ours.n_params()}, {name} {theirs.n_params()}")
    loss0 = {"ours": ours(clips, *masks[0]), name: theirs(clips, *masks[0])}  # the first warm-up step
    sides = {"ours": lambda i: ours(clips, *masks[i + 1]), name: lambda i: theirs(clips, *masks[i + 1])}
    times = interleaved(sides, args.warmup - 1, args.repeats)  # timed: masks[warmup:warmup + repeats]
    load1 = loadavg()
    n = args.warmup + args.repeats
    mem = {s: child_memory(script, [*child_argv, "--memory-child", s]) for s in ("ours", name)}
    return {"config": {"arch": args.arch, "frames": args.frames, "size": args.size, "batch": args.batch,
                       "pred": "12 x 384", "dtype": "fp32", "threads": args.threads, "torch": torch.__version__,
                       "cpu_gemm": cpu_gemm.backend()},
            "params": ours.n_params(), "tokens_mask0": tokens(masks[0]),
            "loss_step0": loss0, "loss_step0_absdiff": abs(loss0["ours"] - loss0[name]),
            "gflop_per_step": sum(step_gflop(ours.cfg, masks[i], args.batch) for i in range(n - args.repeats, n))
            / args.repeats,
            "ours": summary(times["ours"]), name: summary(times[name]),
            f"ratio_ours_over_{name}": ratio(times["ours"], times[name]),
            "paired_ratio": paired(times["ours"], times[name]), "memory": mem,
            "loadavg_before": load0, "loadavg_after": load1}


def step_table(r: dict, name: str) -> None:
    c = r["config"]
    print(f"training step, {c['arch']} {c['frames']}x{c['size']} batch {c['batch']}, predictor {c['pred']}, "
          f"{c['dtype']}, {c['threads']} threads, our fp32 CPU products: {c['cpu_gemm']}; load {r['loadavg_before'][0]} -> {r['loadavg_after'][0]}")
    print(f"same work: {r['params']:,} parameters each, tokens [ctx, tgt] per mask at step 0 {r['tokens_mask0']}, "
          f"step-0 loss ours {r['loss_step0']['ours']:.6f} {name} {r['loss_step0'][name]:.6f}")
    print(f"{'side':9} {'median s':>9} {'min s':>7} {'GFLOP/s':>8} {'peak RSS MB':>11} {'growth MB':>9}")
    for side in ("ours", name):
        s, m = r[side], r["memory"][side]
        print(f"{side:9} {s['median_s']:9.3f} {s['min_s']:7.3f} {r['gflop_per_step'] / s['median_s']:8.1f} "
              f"{m.get('peak_rss_mb', float('nan')):11.0f} {m.get('growth_mb', float('nan')):9.0f}")
    p = r["paired_ratio"]
    print(f"ours / {name}: {r[f'ratio_ours_over_{name}']:.3f} (ratio of medians); repeat by repeat "
          f"{p['median']:.3f} median, {p['min']:.2f}-{p['max']:.2f}")
