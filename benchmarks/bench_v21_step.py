"""Step time of `tiny-cpu-v21` (the V-JEPA 2.1 objective: hierarchical targets, dense context loss, an image batch
every step) against `tiny-cpu` (V-JEPA 1) on this machine, through the real pretraining loop (`run_pretrain`).

    python benchmarks/bench_v21_step.py                  # 3 rounds x 12 steps per recipe, interleaved
    python benchmarks/bench_v21_step.py --rounds 5 --steps 20 --json

The recipes run in alternation (A B A B ...) so that a load change on a shared machine hits both alike. Step time
= time between consecutive `on_step` callbacks; the first `--warmup` steps of every run are dropped; the table
gives the median over all kept steps of all rounds (and the min / max of the per-round medians). Both recipes
read their built-in synthetic data (generated into $VJEPA_CACHE on first use: run once before timing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from vjepa_cli.config._load import load_recipe
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.train.pretrain import run_pretrain

RECIPES = ("tiny-cpu", "tiny-cpu-v21")


def time_run(recipe: str, steps: int, warmup: int, sets: list[str]) -> list[float]:
    """Per-step seconds of one short run of `recipe` (steps after `warmup`)."""
    cfg = load_recipe(PretrainConfig, recipe, [f"steps={steps + 1}", "checkpoint_every=100000", "log_every=5",
                                               "device=cpu", *sets])
    stamps: list[float] = []
    out = Path(tempfile.mkdtemp(prefix="bench-v21-"))
    try:
        run_pretrain(cfg, output_dir=out, stop_at=steps, on_step=lambda _: stamps.append(time.perf_counter()))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="extra --set for both recipes")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()
    times: dict[str, list[float]] = {r: [] for r in RECIPES}
    rounds: dict[str, list[float]] = {r: [] for r in RECIPES}
    for _ in range(args.rounds):
        for r in RECIPES:
            t = time_run(r, args.steps, args.warmup, args.set)
            times[r] += t
            rounds[r].append(statistics.median(t))
    res = {r: {"median_s": statistics.median(times[r]), "round_min_s": min(rounds[r]), "round_max_s": max(rounds[r]),
               "steps_timed": len(times[r])} for r in RECIPES}
    res["ratio"] = res["tiny-cpu-v21"]["median_s"] / res["tiny-cpu"]["median_s"]
    if not args.json:
        print(f"{'recipe':<14} {'median s/step':>13} {'round min':>10} {'round max':>10} {'steps':>6}")
        for r in RECIPES:
            v = res[r]
            print(f"{r:<14} {v['median_s']:>13.3f} {v['round_min_s']:>10.3f} {v['round_max_s']:>10.3f} "
                  f"{v['steps_timed']:>6}")
        print(f"tiny-cpu-v21 / tiny-cpu: {res['ratio']:.2f}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
