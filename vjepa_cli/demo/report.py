"""What the demo reports: the results table, `demo.json` and `report.md` (text, table and pictures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from vjepa_cli.demo.pipeline import DemoConfig, DemoResult

# the report's pictures (name -> path in the output folder); the ones a run did not make are left out
PICTURES = {"loss curve": "pretrain/loss.png", "PCA of patch features": "pca.png", "masks": "masks.png",
            "confusion matrix (pretrained)": "probe-pretrained/confusion.png",
            "surprise curve (impossible video)": "surprise.png",
            "decoded predictions (possible vs impossible physics video)": "decoded.png",
            "planned episode (reach2d, pretrained encoder; frames left to right, the goal image last)": "planned.png"}


def _pct(v: float) -> float:
    return round(100 * v, 1)


def result_rows(probes: dict, surprise: dict, planning: dict | None = None) -> list[dict]:
    """The table: {"metric", "pretrained", "random"} rows from both probes, both surprise scorings and (when
    given: encoder name -> success rate) both world models' planning."""
    rows = []
    for label, key in (("motion probe val top-1 (%)", "val_top1"), ("motion probe train top-1 (%)", "train_top1")):
        rows.append({"metric": label, "pretrained": _pct(probes["pretrained"].best[key]),
                     "random": _pct(probes["random"].best[key])})
    for key, label in (("auroc_peak", "physics surprise AUROC (peak: max / mean)"),
                       ("auroc_max", "physics surprise AUROC (max)"), ("auroc_mean", "physics surprise AUROC (mean)"),
                       ("pairwise_acc_peak", "physics pairwise accuracy (peak, %)"),
                       ("pairwise_acc_max", "physics pairwise accuracy (max, %)")):
        f = _pct if key.startswith("pairwise") else (lambda v: round(v, 3))
        rows.append({"metric": label, "pretrained": f(surprise["pretrained"][key]),
                     "random": f(surprise["random"][key])})
    if planning:
        rows.append({"metric": "reach2d planning success (%, CEM toward goal images)",
                     "pretrained": _pct(planning["pretrained"]), "random": _pct(planning["random"])})
    rows.append({"metric": "chance (motion probe, %)", "pretrained": _pct(1 / len(probes["pretrained"].classes)),
                 "random": _pct(1 / len(probes["random"].classes))})
    return rows


def write_summary(res: DemoResult, surprise: dict) -> Path:
    """`demo.json`: the result and the surprise scores (without the per-video lists)."""
    path = res.out_dir / "demo.json"
    path.write_text(json.dumps({**res.to_json(), "surprise": {
        k: {m: v for m, v in s.items() if m not in ("per_video", "pairs")} for k, s in surprise.items()}},
        indent=2, default=str))
    return path


def write_report(res: DemoResult, cfg: DemoConfig) -> Path:
    """`report.md`: what ran, the results table (whatever it says), and the pictures."""
    from vjepa_cli import __version__
    from vjepa_cli.io.atomic import write_text_atomic

    p = res.pretrain
    lines = [
        "# vjepa demo report", "",
        f"vjepa {__version__}, torch {torch.__version__}, {'quick' if cfg.quick else 'full'} demo, seed {cfg.seed}.", "",
        f"Pretraining (`tiny-cpu`): {p.get('steps')} steps, final loss {p.get('final_loss', float('nan')):.4f}, "
        f"{p.get('clips_per_s', 0):.1f} clips/s, {p.get('seconds', 0):.0f} s.", "",
        f"Surprise rows: `tiny-physics` pretrained on possible physics videos ({p.get('physics_steps')} steps, "
        f"{p.get('physics_seconds', 0):.0f} s) vs its random init; 8-frame windows, contexts of 2 and 4 frames "
        "read by the online encoder, the EMA target encoder gives the actual features. Per video, `max` is the "
        "highest surprise over the windows (Garrido et al. 2025), `mean` its average, and `peak` = max / mean, the "
        "surprise peak relative to the video's own level (scenes differ in how predictable they are as a whole).", "",
        "| metric | pretrained (EMA encoder) | random init (same architecture and seed) |",
        "|---|---|---|",
    ]
    lines += [f"| {r['metric']} | {r['pretrained']} | {r['random']} |" for r in res.rows]
    if "decoder_steps" in p:
        lines += ["", f"Decoded predictions: a regression feature decoder ({p['decoder_steps']} steps, "
                  f"{p.get('decoder_seconds', 0):.0f} s) trained on the physics model's EMA features draws the most "
                  "surprising window of a possible and of an impossible video: the actual frames, the future decoded "
                  "from the actual features (what the features keep), and decoded from the predicted ones, with the "
                  "surprise per predicted step under them."]
    if "wm_episodes" in p:
        lines += ["", f"Planning rows: a reach2d world model (`wm/reach2d`, {p['wm_steps']} predictor steps on "
                  f"{p['wm_episodes']} random-action episodes) on each frozen encoder above, planning with CEM toward "
                  f"goal images; success over {p['wm_eval_episodes']} seeded episodes (the same for both; random "
                  f"actions: {_pct(p.get('wm_random_actions', float('nan')))} %)."]
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in res.timings.items()), ""]
    if cfg.quick:
        lines += ["This was a `--quick` run: sizes are tiny, so the numbers show the pipeline works, not that "
                  "pretraining helps. Run `vjepa demo` without `--quick` for the real comparison.", ""]
    for name, rel in res.pictures.items():
        lines += [f"## {name}", "", f"![{name}]({rel})", ""]
    path = res.out_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
