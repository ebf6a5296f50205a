"""One V-JEPA training step of ours against `pyjepa` (PyPI, GPL-3; not a dependency of this project), side by side.

    pip install pyjepa==0.3.0                 # into your own environment, only to run this benchmark
    python benchmarks/bench_pyjepa.py                                                       # ViT-S 8x128, batch 4
    python benchmarks/bench_pyjepa.py --arch vit_base --frames 16 --size 224 --batch 1

Without pyjepa installed it says so and exits 0.

pyjepa's side is what its users run: `create_jepa("vjepa", ...)` (MultiMask-wrapped ViT + predictor, the
official V-JEPA 1 layout) trained by `VJEPATrainer.train_step` (zero_grad, its lr / wd schedulers, the model's
target + context + predictor forward, `JEPALoss`, backward, AdamW from its factory, its EMA), then float(loss).
Settings made equal: sin-cos positions with uniform_power, predictor 12 x 384 with the encoder's heads and 2 mask
tokens, fp32 (`amp_dtype="fp32"`), no gradient clipping (`grad_clip=None`; pyjepa's default 1.0 would add a
norm and a host sync, and our step leaves clipping out too), constant lr / wd / EMA momentum, the same weights
(ours is loaded with pyjepa's before step 0, so step 0 gives the same loss), clips and masks.

What differs from the official masks: pyjepa's encoder wrapper concatenates the context encodings of all masks
along the batch (`torch.cat` in `MultiMaskWrapper`), so every context mask of a step must have the same length;
with the official multi-block masks (8 x 0.15 and 2 x 0.7 blocks: different context lengths) its step raises.
Both sides therefore get the official masks with each step's context masks cut to the shorter one (its
highest token ids dropped); targets are unchanged. The benchmark records whether the uncut masks fail.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import (  # noqa: E402
    LR,
    MOMENTUM,
    WD,
    OurStep,
    add_step_args,
    compare_steps,
    peak_rss,
    step_argv,
    step_config,
    step_inputs,
    step_table,
)

from vjepa_cli.config.model import ModelConfig  # noqa: E402


def pyjepa_version() -> str | None:
    try:
        import pyjepa
    except ImportError:
        return None
    return getattr(pyjepa, "__version__", "unknown")


class PyjepaStep:
    """pyjepa's V-JEPA model and `VJEPATrainer.train_step`."""

    def __init__(self, cfg: ModelConfig, seed: int, out_dir: str):
        from pyjepa.models.registry import create_jepa
        from pyjepa.training.base import TrainConfig
        from pyjepa.training.vjepa import VJEPAConfig, VJEPATrainer

        torch.manual_seed(seed)  # pyjepa initialises from the global RNG
        self.model = create_jepa("vjepa", encoder=cfg.arch, img_size=cfg.img_size, patch_size=cfg.patch_size,
                                 num_frames=cfg.num_frames, tubelet_size=cfg.tubelet_size, pred_depth=cfg.pred_depth,
                                 pred_embed_dim=cfg.pred_embed_dim, num_mask_tokens=cfg.pred_num_mask_tokens,
                                 uniform_power=cfg.uniform_power, use_sdpa=True)
        train = TrainConfig(output_dir=out_dir, device="cpu", seed=seed, amp_dtype="fp32", grad_clip=None,
                            resume=False)
        jcfg = VJEPAConfig(lr=LR, start_lr=LR, final_lr=LR, weight_decay=WD, final_weight_decay=WD,
                           warmup_epochs=0, momentum_start=MOMENTUM, momentum_end=MOMENTUM)
        self.trainer = VJEPATrainer(self.model, train, jcfg, iterations_per_epoch=1000)

    def __call__(self, clips, ctx, tgt) -> float:
        return float(self.trainer.train_step((clips, ctx, tgt))["loss"])

    def n_params(self) -> int:
        return sum(p.numel() for m in (self.model.encoder, self.model.predictor) for p in m.parameters()
                   if p.requires_grad)

    def weights(self) -> tuple[dict, dict]:
        return self.model.encoder.backbone.state_dict(), self.model.predictor.backbone.state_dict()


def uncut_masks_fail(step: PyjepaStep, cfg: ModelConfig, args) -> str | None:
    """The error pyjepa's step raises on the uncut official masks (None if it runs)."""
    clips, masks = step_inputs(cfg, args, 1)
    if len({c.shape[1] for c in masks[0][0]}) == 1:
        return None
    try:
        step(clips, *masks[0])
    except RuntimeError as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None


def memory_child(args, out_dir: str) -> None:
    cfg = step_config(args)
    n = 1 + args.mem_steps
    clips, masks = step_inputs(cfg, args, n, same_context_length=True)
    step = OurStep(cfg, seed=args.seed) if args.memory_child == "ours" else PyjepaStep(cfg, args.seed, out_dir)
    print(json.dumps(peak_rss(lambda i: step(clips, *masks[i]), n)))


def run(args, out_dir: str) -> dict:
    cfg = step_config(args)
    clips, masks = step_inputs(cfg, args, args.warmup + args.repeats, same_context_length=True)
    theirs = PyjepaStep(cfg, args.seed, out_dir)
    ours = OurStep(cfg, seed=args.seed)
    ours.load(*theirs.weights())
    r = compare_steps(args, "pyjepa", ours, theirs, clips, masks, os.path.abspath(__file__), step_argv(args))
    r["pyjepa_version"] = pyjepa_version()
    r["masks"] = "official multi-block, context masks of a step cut to the shorter one"
    r["uncut_official_masks_in_pyjepa"] = uncut_masks_fail(PyjepaStep(cfg, args.seed, out_dir), cfg, args)
    return r


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_args(ap)
    ap.add_argument("--memory-child", choices=["ours", "pyjepa"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    version = pyjepa_version()
    if version is None:
        print("pyjepa is not installed (pip install pyjepa, outside this project): skipped")
        out = {"skipped": "pyjepa not installed"}
        print(json.dumps(out))
        return out
    with tempfile.TemporaryDirectory() as d:
        if args.memory_child:
            memory_child(args, d)
            return {}
        r = run(args, d)
    print(f"pyjepa {version}; masks: {r['masks']}; uncut masks in pyjepa: "
          f"{r['uncut_official_masks_in_pyjepa'] or 'ran'}")
    step_table(r, "pyjepa")
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    main()
