"""V-JEPA 1 objective vs V-JEPA 2.1 objective at the same CPU budget: dense (synth-seg mIoU), clip-level
(synth-motion attentive probe) and intuitive-physics (surprise AUROC) results, each against random init.

    python benchmarks/v21_objective.py --seeds 0 1 2 --steps 300 --out runs/v21-objective
    python benchmarks/v21_objective.py --quick            # a pipeline check (minutes, numbers meaningless)

Both arms pretrain the same tiny 2.1 encoder (128 wide, 4 blocks, 4 levels, 2.1 RoPE, image embedder; built from
`tiny-cpu-v21` with smaller sizes) from the same init (the seed), on the same data (8-frame clips of a 50/50 mix of
the built-in motion and *possible* physics videos, causal "future" masks), for the same steps and video batch:
- `v1`: the V-JEPA 1/2 objective: L1 on the masked tokens of the last level (`objective` off, 1-level predictor);
- `v21`: the 2.1 objective of `tiny-cpu-v21`: hierarchical targets and predictions (4 levels), the dense context
  loss (1/sqrt-distance weights, lambda ramped in over [steps/10, steps/5]) and an image batch (single frames of
  the shapes videos) every step. The image batches are extra data and compute on top of the same video budget: the
  table's `v21` row says what the whole 2.1 recipe buys, not the dense loss alone (`--no-images` isolates that).
Random init = the encoder both arms start from (with the V-JEPA 1 predictor for surprise).
Each model is scored with the library's own evaluations: `run_seg_probe` (synth-seg, linear per-token head, mIoU),
`run_probe` (probe/synth-motion, val top-1) and `score_pairs` (matched possible / impossible physics videos, as
`vjepa demo` scores them; a 4-level 2.1 model over its four per-level-normed levels, as `vjepa surprise` does). Prints a table (mean
and std over seeds) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from vjepa_cli.config._load import load_recipe
from vjepa_cli.config.extract import SurpriseConfig
from vjepa_cli.config.probe import ProbeConfig
from vjepa_cli.config.seg import SegProbeConfig
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.data.synth import generate_synth
from vjepa_cli.demo.pipeline import random_init_model
from vjepa_cli.eval.probe.run import run_probe
from vjepa_cli.eval.probe.tasks.synth_seg import run_seg_probe
from vjepa_cli.infer.predict import open_model
from vjepa_cli.infer.surprise import read_pairs, score_pairs
from vjepa_cli.models.load import load_model
from vjepa_cli.train.export import run_export
from vjepa_cli.train.metrics import read_metrics
from vjepa_cli.train.pretrain import run_pretrain

ARCH = ["model.embed_dim=128", "model.depth=4", "model.num_heads=4", "model.levels=[0,1,2,3]",
        "model.pred_embed_dim=64", "model.pred_depth=3", "model.pred_num_heads=4"]
V1_OFF = ["objective.hierarchical_targets=false", "objective.predict_context=false", "objective.images=null",
          "model.pred_levels=1", "model.pred_context_head=false"]


def pretrain_sets(args, arm: str, seed: int) -> list[str]:
    s = args.steps
    data = ("data.datasets=[{synth: {task: motion, videos: 512, frames: 16, size: 64, seed: 0}}, "
            "{synth: {task: physics, videos: 512, frames: 16, size: 64, seed: 0}}]")
    sets = [*ARCH, "data.synth=null", data, "data.weights=[1.0, 1.0]", f"steps={s}", f"seed={seed}",
            f"batch_size={args.batch}", "objective.images.batch_size=" + str(args.batch),
            "optim.lr=2.0e-3", "optim.start_lr=1.0e-4", "optim.final_lr=1.0e-5", f"optim.warmup_steps={max(1, s // 10)}",
            "optim.schedule=wsd", f"optim.anneal_steps={max(1, s // 5)}", "optim.ema=[0.996, 0.999]",
            f"objective.lambda_warmup=[{s // 10}, {s // 5}]", f"checkpoint_every={s}", "log_every=10", "device=cpu"]
    if args.no_images and arm == "v21":
        sets.append("objective.images=null")
    return sets + (V1_OFF if arm == "v1" else [])


def surprise(pairs, scfg: SurpriseConfig, model: Path, context: Path | None) -> dict:
    m, _, _ = open_model(model, scfg, context)  # a 4-level model: surprise over its levels, as `vjepa surprise`
    res = score_pairs(pairs, scfg, model=m)
    return {k: res[k] for k in ("auroc_max", "auroc_peak", "pairwise_acc_max")}


def evaluate(args, path: Path, context: Path | None, pairs, out: Path) -> dict:
    seg_cfg = SegProbeConfig(train=args.seg_clips, val=args.seg_clips // 2, steps=200)
    enc = load_model(path).encoder
    seg = run_seg_probe(enc, seg_cfg)
    pr = load_recipe(ProbeConfig, "probe/synth-motion", [
        f"data.synth_train={args.motion_videos}", f"data.synth_val={args.motion_videos // 2}",
        f"optim.epochs={args.probe_epochs}", "optim.lrs=[3.0e-3]", "optim.wds=[0.01]"])
    motion = run_probe(pr, model=path, output_dir=None, device="cpu")
    scfg = load_recipe(SurpriseConfig, None, ["window.frames=8", "window.frame_step=1", "window.stride=2",
                                              "context_frames=[2,4]", "device=cpu"])
    return {"seg_miou": seg.miou, "seg_chance": seg.chance_miou, "motion_top1": motion.best["val_top1"],
            **surprise(pairs, scfg, path, context)}


def run_seed(args, seed: int, pairs) -> dict:
    out = Path(args.out) / f"seed{seed}"
    res, secs = {}, {}
    for arm in ("v1", "v21"):
        cfg = load_recipe(PretrainConfig, "tiny-cpu-v21", pretrain_sets(args, arm, seed))
        t = time.perf_counter()
        if not (out / arm / "model.safetensors").exists():  # a finished run of an interrupted benchmark is kept
            run_pretrain(cfg, output_dir=out / arm, name=f"bench-{arm}")
        secs[arm] = time.perf_counter() - t
        model, ctx = out / f"{arm}.safetensors", out / f"{arm}-context.safetensors"
        run_export(out / arm, model, which="target", with_predictor=True, overwrite=True)
        run_export(out / arm, ctx, which="context", overwrite=True)
        final = read_metrics(out / arm / "metrics.jsonl")[-1]["loss"]
        res[arm] = {**evaluate(args, model, ctx, pairs, out), "final_loss": final, "pretrain_s": round(secs[arm], 1)}
        if arm == "v1":  # the init both arms start from, with the 1-level predictor
            rnd = random_init_model(cfg.model, seed, out / "random-init.safetensors")
    res["random"] = evaluate(args, rnd, None, pairs, out)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8, help="video clips (and images) per step")
    ap.add_argument("--seg-clips", type=int, default=128, help="synth-seg training clips (validation: half)")
    ap.add_argument("--motion-videos", type=int, default=256, help="synth-motion probe training videos (val: half)")
    ap.add_argument("--probe-epochs", type=int, default=15)
    ap.add_argument("--pairs", type=int, default=20, help="physics possible / impossible pairs")
    ap.add_argument("--no-images", action="store_true", help="2.1 arm without image batches (dense loss only)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline")
    ap.add_argument("--out", default="runs/v21-objective")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seg_clips, args.motion_videos, args.probe_epochs, args.pairs = 10, 16, 32, 1, 3
    phys = Path(args.out) / "physics-pairs"
    if not (phys / "synth.json").exists():
        generate_synth("physics", phys, n=2 * args.pairs, frames=32, size=64, seed=321, impossible=True,
                       val_fraction=0.0)
    pairs = read_pairs(phys)
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(args, seed, pairs)
        print(json.dumps({"seed": seed, **per_seed[seed]}), file=sys.stderr, flush=True)
    table = summarise(per_seed)
    print(json.dumps({"args": vars(args), "per_seed": per_seed, "summary": table}))


def summarise(per_seed: dict) -> dict:
    metrics = ("seg_miou", "motion_top1", "auroc_max", "auroc_peak")
    table = {}
    print(f"{'metric':<14}" + "".join(f"{arm:>18}" for arm in ("random", "v1", "v21")))
    for m in metrics:
        row = {}
        for arm in ("random", "v1", "v21"):
            vals = [r[arm][m] for r in per_seed.values()]
            row[arm] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                        "values": vals}
        table[m] = row
        print(f"{m:<14}" + "".join(f"{row[a]['mean']:>11.3f} ±{row[a]['std']:.3f}" for a in ("random", "v1", "v21")))
    return table


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
