"""Probe training from the feature cache against the official on-the-fly protocol (issue 6): same encoder, same
task, same head grid and budget; one run encodes every clip once, the other re-encodes a fresh augmented clip of
every training video each epoch (the synth videos are generated before timing). Reports accuracy (they should agree within noise) and the wall-time speed-up.

    python benchmarks/bench_probe.py                                  # random-init tiny-cpu encoder, synth-motion
    python benchmarks/bench_probe.py --model runs/tiny/model.safetensors --train 300 --val 200 --epochs 10

It first times one training step of the attentive head grid with the pool-first cross-attention against
keys and values projected for every token (upstream's way), on the same random tokens.

Accuracy noise: with n validation clips the binomial standard error is sqrt(p(1-p)/n) (about 3.5 points at
n = 200, p = 0.5); the table prints it so the difference can be read against it.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path


def _model(path: str | None, workdir: Path) -> Path:
    if path:
        return Path(path)
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.demo import random_init_model

    cfg = load_recipe(PretrainConfig, "tiny-cpu", [])
    return random_init_model(cfg.model, 0, workdir / "random-init.safetensors")


def run(model: Path, task: str, n_train: int, n_val: int, epochs: int, scale: tuple[float, float]) -> dict:
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.probe import ProbeConfig
    from vjepa_cli.eval.probe.run import _task_data, run_probe

    sets = [f"data.synth_train={n_train}", f"data.synth_val={n_val}", f"optim.epochs={epochs}",
            f"data.train_scale=[{scale[0]},{scale[1]}]"]
    out = {}
    for mode, extra in (("cache", ["cache=true", "cache_clips_per_video=1"]), ("on-the-fly", ["cache=false"])):
        cfg = load_recipe(ProbeConfig, f"probe/{task}", sets + extra)
        if mode == "cache":  # generate the synth videos once, untimed
            _task_data(cfg, None, None, None, lambda *_: None)
        t = time.perf_counter()
        res = run_probe(cfg, model=model)
        wall = time.perf_counter() - t
        out[mode] = {"val_top1": res.best["val_top1"], "train_top1": res.best["train_top1"], "lr": res.best["lr"],
                     "wd": res.best["wd"], "encode_s": res.timings["encode_s"], "train_s": res.timings["train_s"],
                     "wall_s": round(wall, 2), "num_val": res.num_val}
    p = out["cache"]["val_top1"]
    out["val_stderr"] = math.sqrt(max(p * (1 - p), 1e-9) / out["cache"]["num_val"])
    out["speedup"] = out["on-the-fly"]["wall_s"] / out["cache"]["wall_s"]
    out["config"] = {"task": task, "train": n_train, "val": n_val, "epochs": epochs, "train_scale": list(scale),
                     "model": str(model)}
    return out


def head_steps(dim: int = 192, tokens: int = 128, batch: int = 32, classes: int = 16, reps: int = 5) -> dict:
    """Seconds per training step of a 4-head attentive grid (depth 1) on frozen tokens, with the pool-first
    cross-attention and with keys and values projected for every token (upstream's way); same heads, same data."""
    import torch

    from vjepa_cli.config.probe import ProbeHeadConfig, ProbeOptimConfig
    from vjepa_cli.eval.probe.heads import HeadGrid, build_head

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, tokens, dim, generator=gen), torch.randint(0, classes, (batch,), generator=gen)
    cfg = ProbeOptimConfig(lrs=[1e-2, 3e-3], wds=[0.01, 0.1])
    out = {}
    for mode in ("keys-values", "pool-first"):
        heads = [build_head(ProbeHeadConfig(kind="attentive", depth=1, num_heads=4), dim, classes, gen) for _ in cfg.grid]
        for h in heads:
            h.pooler.cross_attention_block.xattn.pool_first = mode == "pool-first"
        grid = HeadGrid(heads, cfg.grid, cfg, 10_000)
        for _ in range(3):
            grid.train_step(x, y)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            for _ in range(10):
                grid.train_step(x, y)
            times.append((time.perf_counter() - t) / 10)
        out[mode] = {"median_s": sorted(times)[reps // 2], "min_s": min(times)}
    out["speedup"] = out["keys-values"]["median_s"] / out["pool-first"]["median_s"]
    out["config"] = {"dim": dim, "tokens": tokens, "batch": batch, "heads": len(cfg.grid), "threads": torch.get_num_threads()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model file (default: the random init of the tiny-cpu recipe, seed 0)")
    ap.add_argument("--task", default="synth-motion", choices=["synth-motion", "synth-shapes"])
    ap.add_argument("--train", type=int, default=200, help="training videos")
    ap.add_argument("--val", type=int, default=200, help="validation videos")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--scale", type=float, nargs=2, default=(0.7, 1.0),
                    help="random-resized-crop scale for training clips (augmentation, so the two modes differ)")
    args = ap.parse_args()
    hs = head_steps()
    print(f"attentive grid train step ({hs['config']['heads']} heads, batch {hs['config']['batch']}, "
          f"{hs['config']['tokens']} tokens x {hs['config']['dim']}):")
    for mode in ("keys-values", "pool-first"):
        print(f"  {mode:<12}{1000 * hs[mode]['median_s']:>8.1f} ms (min {1000 * hs[mode]['min_s']:.1f})")
    print(f"  pool-first speed-up {hs['speedup']:.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        r = run(_model(args.model, Path(tmp)), args.task, args.train, args.val, args.epochs, tuple(args.scale))
    print(f"{'mode':<12}{'val top-1':>10}{'train top-1':>12}{'encode s':>10}{'train s':>10}{'wall s':>9}")
    for mode in ("cache", "on-the-fly"):
        m = r[mode]
        print(f"{mode:<12}{m['val_top1']:>10.3f}{m['train_top1']:>12.3f}{m['encode_s']:>10.1f}{m['train_s']:>10.1f}"
              f"{m['wall_s']:>9.1f}")
    diff = r["on-the-fly"]["val_top1"] - r["cache"]["val_top1"]
    print(f"val difference {diff:+.3f} (binomial std. error of one side {r['val_stderr']:.3f}); "
          f"speed-up of the cache {r['speedup']:.2f}x")
    print(json.dumps({**r, "head_step": hs}))


if __name__ == "__main__":
    main()
