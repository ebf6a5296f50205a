"""Golden weights: a short `tiny-cpu` pretraining and a short `wm train` at a fixed seed, through the CLI.

Used to prove a restructuring preserves behaviour, not only tests: run it on the commit before and after the
change and compare the tensors bit for bit.

    python benchmarks/golden.py make OUT_DIR        # writes OUT_DIR/pretrain.safetensors, OUT_DIR/wm.safetensors
    python benchmarks/golden.py compare A_DIR B_DIR # exit 0 only if every tensor is bit-identical
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PRETRAIN_SETS = [
    "model.embed_dim=48", "model.depth=2", "model.num_heads=2", "model.pred_embed_dim=24", "model.pred_depth=1",
    "model.pred_num_heads=2", "data.synth.videos=16", "data.num_workers=0", "steps=6", "batch_size=4",
    "optim.warmup_steps=2", "checkpoint_every=3", "log_every=1", "dtype=fp32",
]
WM_SETS = [
    "data.env=reach2d", "data.num_episodes=4", "data.steps=6", "data.size=32", "data.num_frames=3",
    "encoder.model={arch: vit_tiny, embed_dim: 32, depth: 1, num_heads: 2, patch_size: 16, tubelet_size: 2, "
    "num_frames: 2, img_size: 32}",
    "predictor.pred_embed_dim=24", "predictor.depth=1", "predictor.num_heads=2",
    "optim.steps=4", "optim.batch_size=4", "optim.warmup_steps=1", "optim.anneal_steps=1",
    "log_every=1", "checkpoint_every=2", "device=cpu",
]


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    subprocess.run([sys.executable, "-m", "vjepa_cli", *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def make(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _run(["pretrain", "tiny-cpu", *_sets(PRETRAIN_SETS), "-o", str(tmp / "pre")], tmp)
        (tmp / "pre" / "model.safetensors").replace(out / "pretrain.safetensors")
        recipe = tmp / "wm.yaml"
        recipe.write_text("seed: 0\n")
        _run(["wm", "train", str(recipe), *_sets(WM_SETS), "-o", str(tmp / "wm")], tmp)
        (tmp / "wm" / "wm.safetensors").replace(out / "wm.safetensors")


def compare(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    same = True
    for name in ("pretrain.safetensors", "wm.safetensors"):
        ta, tb = load_file(a / name), load_file(b / name)
        if ta.keys() != tb.keys():
            print(json.dumps({"file": name, "keys_differ": sorted(set(ta) ^ set(tb))}))
            same = False
            continue
        diff = [k for k in ta if ta[k].dtype != tb[k].dtype or not (ta[k] == tb[k]).all()]
        print(json.dumps({"file": name, "tensors": len(ta), "differ": diff}))
        same &= not diff
    return same


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(Path(sys.argv[2]).resolve())
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(0 if compare(Path(sys.argv[2]), Path(sys.argv[3])) else 1)
    else:
        sys.exit(__doc__)
