"""One V-JEPA training step of ours against the official code (facebookresearch/jepa, V-JEPA 1), side by side.

    python benchmarks/bench_official.py --official-root /work/official/jepa                  # ViT-S 8x128, batch 4
    python benchmarks/bench_official.py --official-root ... --arch vit_base --frames 16 --size 224 --batch 1

`--official-root` is a checkout (or a copy of `src/`) of facebookresearch/jepa; nothing of it is in this project.
Without it (or `$VJEPA_OFFICIAL_ROOT`), or when the path lacks its model files, the benchmark says so and exits 0.

Both sides: the same architecture (sin-cos positions with `uniform_power`, predictor 12 x 384 with the encoder's
heads and 2 mask tokens), the same clips, the same official multi-block masks (8 x 0.15 + 2 x 0.7 blocks, from
`vjepa_cli.data.masks`, drawn before timing as the loader workers would; they are the (B, K) index tensors the
official forward takes), fp32, the same fixed lr / weight decay / EMA momentum. The official side replays the
body of `train_step()` in `app/vjepa/train.py` (target forward no-grad + layer_norm + apply_masks, MultiMask
encoder and predictor, L1 loss + its reg term at coefficient 0, backward, its 4-group AdamW, zero_grad, the
mul_/add_ EMA, float(loss)) without its loggers (grad_logger / adamw_logger) and without autocast (off on CPU).
Ours runs `side_by_side.OurStep`, i.e. the trainer's own objects.

Same work: ours is loaded with the official weights before the first step, so step 0 (same weights, clips and
masks) must give the same loss on both sides; the parameter counts must match; both see the same token counts.
Timing: warm-up, then repeats alternating the order of the sides; medians and their ratio. Peak resident memory
of each side is measured in a process of its own. Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

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
    tokens,
)

from vjepa_cli.config.model import ModelConfig  # noqa: E402

NEEDED = ("src/models/vision_transformer.py", "src/models/predictor.py", "src/models/utils/multimask.py",
          "src/masks/utils.py", "src/utils/tensors.py")


def missing_files(root: str | None) -> str | None:
    """Why `root` cannot be used (None when it can)."""
    if not root:
        return "no --official-root given (nor $VJEPA_OFFICIAL_ROOT)"
    lacking = [f for f in NEEDED if not (Path(root) / f).is_file()]
    return f"{root} lacks {', '.join(lacking)}" if lacking else None


class OfficialStep:
    """The official models, optimizer and `train_step()` body, imported from `root`."""

    def __init__(self, root: str, cfg: ModelConfig, seed: int = 0):
        sys.path.insert(0, str(root))
        vit = importlib.import_module("src.models.vision_transformer")
        pred = importlib.import_module("src.models.predictor")
        mm = importlib.import_module("src.models.utils.multimask")
        self.apply_masks = importlib.import_module("src.masks.utils").apply_masks
        torch.manual_seed(seed)  # the official init draws from the global RNG
        geo = dict(img_size=cfg.img_size, patch_size=cfg.patch_size, num_frames=cfg.num_frames,
                   tubelet_size=cfg.tubelet_size, uniform_power=cfg.uniform_power, use_sdpa=True)
        enc = vit.__dict__[cfg.arch](**geo)
        self.encoder = mm.MultiMaskWrapper(enc)
        self.predictor = mm.PredictorMultiMaskWrapper(pred.vit_predictor(
            **geo, use_mask_tokens=True, embed_dim=enc.embed_dim, predictor_embed_dim=cfg.pred_embed_dim,
            depth=cfg.pred_depth, num_heads=enc.num_heads, num_mask_tokens=cfg.pred_num_mask_tokens,
            zero_init_mask_tokens=True))
        self.target = copy.deepcopy(self.encoder)
        for p in self.target.parameters():
            p.requires_grad = False

        def groups(m, decay):  # init_opt in app/vjepa/utils.py
            return [p for n, p in m.named_parameters() if (("bias" not in n) and p.ndim != 1) == decay]

        self.opt = torch.optim.AdamW([
            {"params": groups(self.encoder, True), "weight_decay": WD},
            {"params": groups(self.predictor, True), "weight_decay": WD},
            {"params": groups(self.encoder, False), "WD_exclude": True, "weight_decay": 0},
            {"params": groups(self.predictor, False), "WD_exclude": True, "weight_decay": 0},
        ], lr=LR, betas=(0.9, 0.999), eps=1e-8)

    def __call__(self, clips, masks_enc, masks_pred) -> float:
        with torch.no_grad():  # forward_target
            h = self.target(clips)
            h = F.layer_norm(h, (h.size(-1),))
            h = self.apply_masks(h, masks_pred, concat=False)
        z = self.encoder(clips, masks_enc)  # forward_context
        self.last_tokens = [[zi.shape[1], hi.shape[1]] for zi, hi in zip(z, h, strict=True)]  # [Kc, Kt] per mask
        z = self.predictor(z, h, masks_enc, masks_pred)
        loss_jepa = 0.0
        for zi, hi in zip(z, h, strict=True):  # loss_fn, loss_exp = 1
            loss_jepa += torch.mean(torch.abs(zi - hi) ** 1.0) / 1.0
        loss_jepa /= len(masks_pred)
        pstd_z = sum(torch.sqrt(zi.var(dim=1) + 0.0001) for zi in z) / len(z)  # reg_fn
        loss = loss_jepa + 0.0 * torch.mean(F.relu(1.0 - pstd_z))  # reg_coeff = 0 in every config
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        with torch.no_grad():
            for q, k in zip(self.encoder.parameters(), self.target.parameters(), strict=True):
                k.data.mul_(MOMENTUM).add_((1.0 - MOMENTUM) * q.detach().data)
        return float(loss)

    def n_params(self) -> int:
        return sum(p.numel() for m in (self.encoder, self.predictor) for p in m.parameters() if p.requires_grad)


def build(side: str, cfg, args):
    return OurStep(cfg, seed=args.seed) if side == "ours" else OfficialStep(args.official_root, cfg, seed=args.seed)


def memory_child(args) -> None:
    """Child mode: build one side, run warm-up + a few steps, print its peak resident memory as JSON."""
    cfg = step_config(args)
    n = 1 + args.mem_steps
    clips, masks = step_inputs(cfg, args, n)
    step = build(args.memory_child, cfg, args)
    print(json.dumps(peak_rss(lambda i: step(clips, *masks[i]), n)))


def run(args) -> dict:
    cfg = step_config(args)
    clips, masks = step_inputs(cfg, args, args.warmup + args.repeats)
    official = OfficialStep(args.official_root, cfg, seed=args.seed)
    ours = OurStep(cfg, seed=args.seed)
    ours.load(official.encoder.backbone.state_dict(), official.predictor.backbone.state_dict())
    r = compare_steps(args, "official", ours, official, clips, masks, os.path.abspath(__file__),
                      ["--official-root", args.official_root, *step_argv(args)])
    if official.last_tokens != tokens(masks[-1]):  # what its encoder saw in the last step, against the masks
        raise SystemExit(f"token counts differ: official {official.last_tokens}, masks {tokens(masks[-1])}")
    return r


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official-root", default=os.environ.get("VJEPA_OFFICIAL_ROOT"))
    add_step_args(ap)
    ap.add_argument("--memory-child", choices=["ours", "official"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # the official attention warns on every call (deprecated sdp_kernel)
    why = missing_files(args.official_root)
    if why is not None:
        print(f"official code not available ({why}): skipped")
        out = {"skipped": why}
        print(json.dumps(out))
        return out
    if args.memory_child:
        memory_child(args)
        return {}
    r = run(args)
    step_table(r, "official")
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    main()
