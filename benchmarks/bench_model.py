"""Speed of the encoder (inference) and of a full V-JEPA training step, as MFU against a measured GEMM peak.

    python benchmarks/bench_model.py --arch vit_small --frames 8 --size 128 --batch 4 --mode train
    python benchmarks/bench_model.py --arch vit_base --frames 16 --size 224 --batch 1 --mode infer

FLOPs are counted analytically from the actual token numbers (2 FLOPs per multiply-add, backward = 2x forward):

    block(N, D, Hm)   = 2 * N * (3*D*D + D*D + 2*D*Hm)   # qkv, proj, fc1 + fc2
                      + 2 * 2 * N*N * D                  # q k^T and attn v
    encoder(N)        = 2 * N * D * (C * tubelet * p * p) + depth * block(N, D, Hm)
    predictor(Kc, Kt) = 2 * Kc * D * Dp + pred_depth * block(Kc + Kt, Dp, 4 Dp) + 2 * Kt * Dp * D
    train step / clip = encoder(N)                                   # target encoder, no grad
                      + sum over masks 3 * [encoder(Kc_m) + predictor(Kc_m, Kt_m)]

(The patch embedding of the context encoder runs once on the full clip here, but it is counted per mask at K
tokens, like the reference; it is < 0.2 % of the total.) LayerNorm, GELU, softmax, loss, optimizer and EMA are
not counted: they are the overhead MFU exposes (so is the recompute of `--checkpointing`). MFU = achieved GFLOP/s / peak, where the peak is the median of
several fp32 2048^3 matmuls measured in the same run (and, for comparison, the reference 327 GFLOP/s).
`mfu_paired` divides each step's rate by a GEMM rate measured just before that step: on a CPU shared with other
jobs it estimates how much of the CPU share we actually had went into model FLOPs.

The training step mirrors the official one (target forward no-grad + layer_norm + gather, context encoder once
per mask, predictor once per mask, L1 loss, backward, AdamW, EMA) with fused AdamW and `torch._foreach_lerp_`;
`--mask-batching packed` (the library's default) runs the encoder and the predictor once for all masks instead
(tokens packed, `vjepa_cli.models.packed`); `per_mask` is the official order (see bench_step.py for both).
Masks are the official multi-block ones (8 blocks x 0.15 + 2 blocks x 0.7) from `vjepa_cli.data.masks`; they are
drawn before the timed region, as the official collator runs in loader workers.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.data.masks import MaskCollator
from vjepa_cli.models import build_encoder, build_predictor, cpu_gemm
from vjepa_cli.models.vit import gather_tokens

REF_PEAK = 327.0  # GFLOP/s, fp32 2048^3 on a quiet machine (shared/reference/perf-baseline.md)


_GEMM: list[torch.Tensor] = []


def gemm_peak(n: int = 2048, reps: int = 7) -> float:
    """Median fp32 GFLOP/s of an n^3 product, the faster of the BLAS (`torch.mm` into a preallocated output)
    and oneDNN (`cpu_gemm`, where this torch has it): on AMD CPUs MKL's sgemm runs at about half oneDNN's rate."""
    if not _GEMM or _GEMM[0].shape[0] != n:
        _GEMM[:] = [torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)]
    a, b, out = _GEMM
    products = [lambda: torch.mm(a, b, out=out)]
    if cpu_gemm.resolve("onednn") == "onednn":
        products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    best = 0.0
    for product in products:
        product()
        rates = []
        for _ in range(reps):
            t = time.perf_counter()
            product()
            rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
        best = max(best, statistics.median(rates))
    return best


def block_flops(n: int, d: int, hm: int) -> float:
    return 2 * n * (4 * d * d + 2 * d * hm) + 4 * n * n * d


def encoder_flops(cfg: ModelConfig, n: int) -> float:
    d, depth, _, mlp = cfg.resolved_sizes()
    patch = 2 * n * d * cfg.in_chans * cfg.tubelet_size * cfg.patch_size**2
    return patch + depth * block_flops(n, d, int(d * mlp))


def predictor_flops(cfg: ModelConfig, kc: int, kt: int) -> float:
    d, dp = cfg.resolved_sizes()[0], cfg.pred_embed_dim
    return 2 * kc * d * dp + cfg.pred_depth * block_flops(kc + kt, dp, 4 * dp) + 2 * kt * dp * d


def make_config(args) -> ModelConfig:
    return ModelConfig(
        arch=args.arch, num_frames=args.frames, img_size=args.size, pos_embed=args.pos,
        pred_depth=args.pred_depth, pred_embed_dim=args.pred_dim, pred_num_heads=args.pred_heads,
        checkpointing=args.checkpointing,
    )


def bench_infer(cfg: ModelConfig, args) -> dict:
    enc = build_encoder(cfg, torch.Generator().manual_seed(0)).eval()
    x = torch.randn(args.batch, cfg.in_chans, args.frames, args.size, args.size)
    g = enc.token_grid(x)
    n = g[0] * g[1] * g[2]
    times, peaks = [], []
    with torch.inference_mode():
        for i in range(args.warmup + args.steps):
            peak = gemm_peak(reps=3) if i >= args.warmup else 0.0  # the machine's speed right now (shared CPU)
            t = time.perf_counter()
            enc(x)
            if i >= args.warmup:
                times.append(time.perf_counter() - t)
                peaks.append(peak)
    flops = args.batch * encoder_flops(cfg, n)
    return {"mode": "infer", "tokens": n, "gflop_per_clip": encoder_flops(cfg, n) / 1e9, "times": times,
            "flops_per_step": [flops] * len(times), "peaks": peaks}


class Trainer:
    """The benchmark's training step (what `vjepa pretrain` does per batch, without data loading)."""

    def __init__(self, cfg: ModelConfig, ema: float = 0.998, lr: float = 1e-4, mask_batching: str = "packed"):
        self.encoder = build_encoder(cfg, torch.Generator().manual_seed(0)).train()
        self.predictor = build_predictor(cfg, torch.Generator().manual_seed(1)).train()
        self.target = copy.deepcopy(self.encoder).eval().requires_grad_(False)
        params = [p for m in (self.encoder, self.predictor) for p in m.parameters()]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.04}, {"params": no_decay, "weight_decay": 0.0}],
                                     lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
        self.online = list(self.encoder.parameters())
        self.ema_params = list(self.target.parameters())
        self.ema, self.mask_batching = ema, mask_batching

    def step(self, clips: torch.Tensor, ctx: list[torch.Tensor], tgt: list[torch.Tensor]) -> float:
        with torch.no_grad():
            h = self.target(clips)  # (B, N, D)
            h = F.layer_norm(h, h.shape[-1:])
        loss = 0.0
        if self.mask_batching == "packed":  # one encoder and one predictor pass for all masks
            preds = self.predictor(self.encoder(clips, ctx, split=True), ctx, tgt, mask_index=0)  # [(B, Kt_i, D)]
        else:
            preds = [self.predictor(self.encoder(clips, [c]), c, t, mask_index=i)  # (B, Kt, D)
                     for i, (c, t) in enumerate(zip(ctx, tgt, strict=True))]
        for p, t in zip(preds, tgt, strict=True):
            loss = loss + F.l1_loss(p, gather_tokens(h, t))
        loss = loss / len(ctx)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_params, self.online, 1.0 - self.ema)
        return loss.detach()


def bench_train(cfg: ModelConfig, args) -> dict:
    tr = Trainer(cfg, mask_batching=args.mask_batching)
    grid = cfg.grid(args.frames, args.size)
    n = grid[0] * grid[1] * grid[2]
    collator = MaskCollator(MaskConfig(), grid, seed=args.seed)
    clips = torch.randn(args.batch, cfg.in_chans, args.frames, args.size, args.size)
    times, flops, ks, peaks = [], [], [], []
    prof = None
    for i in range(args.warmup + args.steps + (1 if args.profile else 0)):
        ctx, tgt = collator.masks(i, args.batch)
        if i == args.warmup + args.steps:  # one extra, untimed step under the profiler
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=False)
            prof.__enter__()
        peak = gemm_peak(reps=3) if i >= args.warmup and prof is None else 0.0
        t = time.perf_counter()
        loss = tr.step(clips, ctx, tgt)
        float(loss)
        dt = time.perf_counter() - t
        if prof is not None:
            prof.__exit__(None, None, None)
        if i >= args.warmup and prof is None:
            times.append(dt)
            peaks.append(peak)
            f = encoder_flops(cfg, n)
            for c, t_ in zip(ctx, tgt, strict=True):
                f += 3 * (encoder_flops(cfg, c.shape[1]) + predictor_flops(cfg, c.shape[1], t_.shape[1]))
            flops.append(args.batch * f)
            ks.append([[c.shape[1], t_.shape[1]] for c, t_ in zip(ctx, tgt, strict=True)])
    out = {"mode": "train", "tokens": n, "gflop_per_clip": statistics.mean(flops) / args.batch / 1e9,
           "times": times, "flops_per_step": flops, "peaks": peaks, "ctx_tgt_tokens": ks}
    if prof is not None:
        out["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile)
    return out


def summarise(res: dict, args, peak: float) -> dict:
    times, flops, peaks = res.pop("times"), res.pop("flops_per_step"), res.pop("peaks")
    med = statistics.median(times)
    rates = [f / t / 1e9 for f, t in zip(flops, times, strict=True)]
    rate = statistics.median(rates)
    # On a shared CPU, each step is compared with a GEMM timed just before it: the fraction of the CPU share
    # we had that the step turned into model FLOPs.
    paired = statistics.median(r / p for r, p in zip(rates, peaks, strict=True))
    res.update(step_median_s=med, step_min_s=min(times), clips_per_s=args.batch / med, gflops=rate,
               mfu=rate / peak, mfu_paired=paired, mfu_ref327=rate / REF_PEAK, gemm_peaks_paired=peaks)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--mode", choices=["infer", "train", "both"], default="both")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pos", choices=["sincos", "rope"], default="sincos")
    ap.add_argument("--pred-depth", type=int, default=12)
    ap.add_argument("--pred-dim", type=int, default=384)
    ap.add_argument("--pred-heads", type=int, default=None, help="default: the encoder's (V-JEPA 1)")
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--mask-batching", choices=["packed", "per_mask"], default="packed",
                    help="train step: one encoder/predictor pass for all masks (packed) or one per mask (official)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS", help="profile one extra train step")
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = make_config(args)
    load0 = os.getloadavg()
    peak_before = gemm_peak()
    results = []
    if args.mode in ("infer", "both"):
        results.append(bench_infer(cfg, args))
    if args.mode in ("train", "both"):
        results.append(bench_train(cfg, args))
    peak = statistics.median([peak_before, gemm_peak()])
    results = [summarise(r, args, peak) for r in results]
    report = {"arch": args.arch, "frames": args.frames, "size": args.size, "batch": args.batch, "pos": args.pos,
              "mask_batching": args.mask_batching, "threads": args.threads, "torch": torch.__version__, "gemm_peak_gflops": peak,
              "loadavg_before": load0, "loadavg_after": os.getloadavg(), "results": results}
    print(f"{args.arch} {args.frames}x{args.size} batch {args.batch}, {args.threads} threads, "
          f"GEMM peak {peak:.0f} GFLOP/s, load {load0[0]:.1f} -> {report['loadavg_after'][0]:.1f}")
    print(f"{'mode':6} {'tokens':>6} {'GFLOP/clip':>10} {'step med':>9} {'min':>7} {'clips/s':>8} "
          f"{'GFLOP/s':>8} {'MFU':>5} {'paired':>6} {'MFU327':>6}")
    for r in results:
        print(f"{r['mode']:6} {r['tokens']:6d} {r['gflop_per_clip']:10.2f} {r['step_median_s']:9.3f} "
              f"{r['step_min_s']:7.3f} {r['clips_per_s']:8.2f} {r['gflops']:8.1f} {r['mfu']:5.2f} "
              f"{r['mfu_paired']:6.2f} {r['mfu_ref327']:6.2f}")
        if "profile" in r:
            print(r.pop("profile"))
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
