"""Three ways to run token batches of different lengths (one per mask pair) through a stack of transformer blocks,
forward + backward: one pass per mask, packed (`models/packed.py`: one (sum_i B K_i, D) matrix, attention per
mask), and padded to the longest mask with a key-padding attention mask. The benchmark behind the choice of the
packed layout for the training step (`mask_batching: packed`).

    python benchmarks/bench_mask_layouts.py                  # vit_small 8x128 batch 4: encoder and predictor
    python benchmarks/bench_mask_layouts.py --frames 16 --size 224 --batch 2 --dim 768 --heads 12 --repeats 3

The lengths are those of the official multi-block masks (8 x 0.15 and 2 x 0.7 blocks) on the clip's token grid:
the context encoder sees K_i = context tokens, the predictor K_i = context + target tokens. Blocks are the
library's (`models.layers.Block`), `--depth` of them at width `--dim`; the three layouts run interleaved and the
table gives the median of `--repeats` and the ratio to one pass per mask.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.data.masks import MaskCollator
from vjepa_cli.models.layers import Block, run_blocks
from vjepa_cli.models.packed import Packed


def layouts(blocks: nn.ModuleList, xs: list[torch.Tensor]) -> dict:
    """name -> a function running forward + backward of `xs` [(B, K_i, D)] in that layout."""
    d = xs[0].shape[-1]

    def per_mask():
        sum(run_blocks(blocks, x)[0].sum() for x in xs).backward()

    def packed():
        layout = Packed.of(xs)
        run_blocks(blocks, layout.pack(xs), layout=layout)[0].sum().backward()

    def padded():
        k = max(x.shape[1] for x in xs)
        xp = torch.cat([torch.cat([x, x.new_zeros(x.shape[0], k - x.shape[1], d)], 1) for x in xs])  # (M B, K, D)
        valid = torch.cat([(torch.arange(k) < x.shape[1]).expand(x.shape[0], k) for x in xs])  # (M B, K)
        out = run_blocks(blocks, xp, attn_mask=valid[:, None, None, :])[0]
        (out * valid[..., None]).sum().backward()

    return {"per_mask": per_mask, "packed": packed, "padded": padded}


def bench(name: str, lengths: list[int], args) -> dict:
    gen = torch.Generator().manual_seed(0)
    blocks = nn.ModuleList(Block(args.dim, args.heads) for _ in range(args.depth))
    xs = [torch.randn(args.batch, k, args.dim, generator=gen) for k in lengths]
    fns = layouts(blocks, xs)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(args.warmup + args.repeats):
        for k, f in (fns.items() if i % 2 == 0 else reversed(fns.items())):
            t = time.perf_counter()
            f()
            if i >= args.warmup:
                times[k].append(time.perf_counter() - t)
            blocks.zero_grad(set_to_none=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"stack": name, "lengths": lengths, "median_s": med,
            "ratio": {k: v / med["per_mask"] for k, v in med.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    grid = ModelConfig(num_frames=args.frames, img_size=args.size).grid()
    ctx, tgt = MaskCollator(MaskConfig(), grid, seed=0).masks(0, args.batch)
    load0 = os.getloadavg()
    rows = [bench("encoder (context)", [int(c.shape[1]) for c in ctx], args),
            bench("predictor (context+target)", [int(c.shape[1] + t.shape[1]) for c, t in zip(ctx, tgt, strict=True)],
                  args)]
    print(f"{args.depth} blocks x {args.dim}, batch {args.batch}, grid {grid}, {args.threads} threads, fwd+bwd, "
          f"{args.repeats} repeats; load {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{'stack':28} {'K per mask':>12} {'per_mask s':>10} {'packed':>7} {'padded':>7}")
    for r in rows:
        print(f"{r['stack']:28} {str(r['lengths']):>12} {r['median_s']['per_mask']:10.3f} "
              f"{r['ratio']['packed']:7.3f} {r['ratio']['padded']:7.3f}")
    print(json.dumps({"grid": grid, "batch": args.batch, "dim": args.dim, "depth": args.depth, "threads": args.threads,
                      "loadavg_before": load0, "loadavg_after": os.getloadavg(), "results": rows}))


if __name__ == "__main__":
    main()
