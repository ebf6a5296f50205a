"""Encoder inference of ours against `transformers`' `VJEPA2Model` with the same weights, side by side.

    python benchmarks/bench_hf_encoder.py                                   # ViT-S and ViT-B, 16x224, batch 1
    python benchmarks/bench_hf_encoder.py --archs vit_small --frames 8 --size 128 --repeats 3
    python benchmarks/bench_hf_encoder.py --profile 15                      # + where the time goes, both sides
    python benchmarks/bench_hf_encoder.py --dtype bf16                      # both sides' weights and inputs in bf16

For each architecture: our V-JEPA 2 encoder (3D RoPE) is built from a seeded generator and converted to the
transformers layout by `vjepa_cli.io.hf_layout.to_hf_state_dict` (the `vjepa convert` / `export` mapping); the
`VJEPA2Model` (attn_implementation="sdpa") loads it strictly for the encoder (its predictor is not used:
`skip_predictor=True`). Inputs: one float clip batch, fed to ours the way `vjepa extract` does ((B, 3, T, H, W)
as a channels-last view of decoded (B, T, H, W, 3) frames) and to transformers as the contiguous (B, T, 3, H, W)
its video processor returns. fp32 (or, with `--dtype bf16`, both models and inputs cast to bf16, as
`vjepa extract --dtype bf16` does), torch.inference_mode, eval mode. The outputs must agree (max abs difference
reported, checked against `--tol` times the largest output magnitude); timing is a warm-up then repeats alternating the order of the sides, and the
ratio of medians; each side's peak resident memory is measured in a process of its own. Without transformers
it says so and exits 0. Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_model import encoder_flops  # noqa: E402
from side_by_side import child_memory, interleaved, loadavg, paired, peak_rss, ratio, summary  # noqa: E402

from vjepa_cli.config.model import ModelConfig  # noqa: E402
from vjepa_cli.io.hf_layout import to_hf_state_dict  # noqa: E402
from vjepa_cli.models import build_encoder, cpu_gemm  # noqa: E402
from vjepa_cli.runtime import torch_dtype  # noqa: E402


def build(arch: str, args, side: str):
    """(our encoder or the VJEPA2Model with the same weights, model config) for `side` in ours | hf | both."""
    import transformers

    cfg = ModelConfig(arch=arch, num_frames=args.frames, img_size=args.size, pos_embed="rope")
    dtype = torch_dtype(args.dtype)
    ours = build_encoder(cfg, torch.Generator().manual_seed(args.seed)).eval()
    if side == "ours":
        return ours.to(dtype), None, cfg
    hf_sd, hf_cfg = to_hf_state_dict({f"encoder.{k}": v for k, v in ours.state_dict().items()}, cfg)
    hf_cfg = {k: v for k, v in hf_cfg.items() if k not in ("model_type", "architectures")}
    hf = transformers.VJEPA2Model(transformers.VJEPA2Config(**hf_cfg, attn_implementation="sdpa")).eval()
    res = hf.load_state_dict(hf_sd, strict=False)
    bad = [k for k in res.missing_keys if not k.startswith("predictor.")] + list(res.unexpected_keys)
    if bad:
        raise SystemExit(f"transformers did not take the converted encoder: {bad[:5]}")
    return (None if side == "hf" else ours.to(dtype)), hf.to(dtype), cfg


def inputs(args) -> tuple[torch.Tensor, torch.Tensor]:
    """The same pixels as ours takes them (B, 3, T, S, S) and as transformers takes them (B, T, 3, S, S)."""
    frames = torch.randn(args.batch, args.frames, args.size, args.size, 3, generator=torch.Generator().manual_seed(1))
    frames = frames.to(torch_dtype(args.dtype))
    return frames.permute(0, 4, 1, 2, 3), frames.permute(0, 1, 4, 2, 3).contiguous()


def forwards(ours, hf, x_ours, x_hf):
    def f_ours(_i=0):
        with torch.inference_mode():
            return ours(x_ours)  # (B, N, D)

    def f_hf(_i=0):
        with torch.inference_mode():
            return hf(pixel_values_videos=x_hf, skip_predictor=True).last_hidden_state  # (B, N, D)

    return f_ours, f_hf


def profile(fn, rows: int) -> str:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def run_arch(arch: str, args) -> dict:
    load0 = loadavg()
    ours, hf, cfg = build(arch, args, "both")
    x_ours, x_hf = inputs(args)
    f_ours, f_hf = forwards(ours, hf, x_ours, x_hf)
    a, b = f_ours().float(), f_hf().float()
    diff = (a - b).abs().max().item()
    if a.shape != b.shape or not diff <= args.tol * max(1.0, b.abs().max().item()):
        raise SystemExit(f"{arch}: outputs differ: shapes {tuple(a.shape)} / {tuple(b.shape)}, max abs {diff:.3g}")
    times = interleaved({"ours": f_ours, "transformers": f_hf}, args.warmup, args.repeats)
    r = {"arch": arch, "tokens": a.shape[1], "gflop_per_clip": encoder_flops(cfg, a.shape[1]) / 1e9,
         "max_abs_diff": diff, "output_abs_max": a.abs().max().item(),
         "ours": summary(times["ours"]), "transformers": summary(times["transformers"]),
         "ratio_ours_over_transformers": ratio(times["ours"], times["transformers"]),
         "paired_ratio": paired(times["ours"], times["transformers"]),
         "loadavg_before": load0, "loadavg_after": loadavg()}
    if args.profile:
        r["profile"] = {"ours": profile(f_ours, args.profile), "transformers": profile(f_hf, args.profile)}
    del ours, hf
    argv = ["--archs", arch, "--dtype", args.dtype, "--frames", str(args.frames), "--size", str(args.size), "--batch", str(args.batch),
            "--threads", str(args.threads), "--mem-steps", str(args.mem_steps), "--seed", str(args.seed)]
    r["memory"] = {s: child_memory(os.path.abspath(__file__), [*argv, "--memory-child", s])
                   for s in ("ours", "transformers")}
    return r


def memory_child(args) -> None:
    side = "ours" if args.memory_child == "ours" else "hf"
    ours, hf, _ = build(args.archs.split(",")[0], args, side)
    x_ours, x_hf = inputs(args)
    f_ours, f_hf = forwards(ours, hf, x_ours, x_hf)
    print(json.dumps(peak_rss(f_ours if side == "ours" else f_hf, 1 + args.mem_steps)))


def report(results: list[dict], args) -> None:
    print(f"encoder inference, {args.frames}x{args.size} batch {args.batch}, {args.dtype} inference_mode, "
          f"{args.threads} threads, torch {torch.__version__}, our fp32 CPU products: {cpu_gemm.backend()}")
    print(f"{'arch':10} {'side':13} {'median s':>9} {'min s':>7} {'GFLOP/s':>8} {'peak RSS MB':>11} {'growth MB':>9} "
          f"{'ours/hf':>7} {'max|diff|':>9} {'load':>11}")
    for r in results:
        for side in ("ours", "transformers"):
            s, m = r[side], r["memory"][side]
            extra = (f"{r['ratio_ours_over_transformers']:7.3f} {r['max_abs_diff']:9.2e} "
                     f"{r['loadavg_before'][0]:5.1f}->{r['loadavg_after'][0]:<5.1f}" if side == "ours" else "")
            print(f"{r['arch']:10} {side:13} {s['median_s']:9.3f} {s['min_s']:7.3f} "
                  f"{args.batch * r['gflop_per_clip'] / s['median_s']:8.1f} {m.get('peak_rss_mb', float('nan')):11.0f} "
                  f"{m.get('growth_mb', float('nan')):9.0f} {extra}")
        for side, table in r.get("profile", {}).items():
            print(f"\nprofile, {r['arch']}, {side}:\n{table}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="vit_small,vit_base", help="comma-separated")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mem-steps", type=int, default=2, help="forwards after warm-up in each memory process")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="fp32", help="weights and inputs of both sides")
    ap.add_argument("--tol", type=float, default=None,
                    help="max abs difference allowed between the outputs, relative to their largest magnitude "
                         "(default 1e-3 for fp32, 5e-2 for bf16)")
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS", help="profile one forward of each side")
    ap.add_argument("--memory-child", choices=["ours", "transformers"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tol is None:
        args.tol = 1e-3 if args.dtype == "fp32" else 5e-2
    torch.set_num_threads(args.threads)
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("transformers is not installed: skipped")
        out = {"skipped": "transformers not installed"}
        print(json.dumps(out))
        return out
    if args.memory_child:
        memory_child(args)
        return {}
    results = [run_arch(a, args) for a in args.archs.split(",")]
    report(results, args)
    out = {"dtype": args.dtype, "frames": args.frames, "size": args.size, "batch": args.batch, "threads": args.threads,
           "torch": torch.__version__, "cpu_gemm": cpu_gemm.backend(),
           "results": [{k: v for k, v in r.items() if k != "profile"} for r in results]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
