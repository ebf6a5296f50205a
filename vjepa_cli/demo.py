"""`vjepa demo`: the whole pipeline on built-in synthetic data, with an honest report.

synth data -> pretrain (`tiny-cpu`) -> export the EMA encoder -> extract features -> probe `synth-motion`
with the pretrained and with the random-initialised encoder it started from -> surprise on `physics`
possible vs impossible pairs (AUROC) for both -> `report.md` with the table and the pictures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vjepa_cli.errors import VjepaError

Stage = Callable[[str, int, int], None]  # (stage name, done, total)


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo is. `quick` is the test-suite size (about a minute); the default is about 12 min on 2 CPU cores."""

    quick: bool = False  # tiny sizes, for tests and a first look
    steps: int | None = None  # pretraining steps (None: the recipe's, or 30 with quick)
    minutes: float | None = None  # whole-demo time budget: sets the pretraining steps from a measured step time
    seed: int = 0  # pretraining seed; the random baseline is the init this seed builds
    device: str | None = None  # cpu / cuda / cuda:N (None: auto)
    physics_pairs: int | None = None  # matched possible/impossible pairs for surprise (None: 40, or 6 with quick)


@dataclass
class DemoResult:
    out_dir: Path
    rows: list[dict] = field(default_factory=list)  # the report table: metric, pretrained, random
    pictures: dict[str, str] = field(default_factory=dict)  # name -> path relative to out_dir
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    pretrain: dict = field(default_factory=dict)  # steps, clips/s, final loss
    report: Path | None = None

    def to_json(self) -> dict:
        return {"out_dir": str(self.out_dir), "rows": self.rows, "pictures": self.pictures,
                "timings": self.timings, "pretrain": self.pretrain, "report": str(self.report)}


def _pretrain_sets(cfg: DemoConfig) -> list[str]:
    sets = [f"seed={cfg.seed}"]
    if cfg.device:
        sets.append(f"device={cfg.device}")
    if cfg.quick:
        sets += ["steps=30", "data.synth.videos=48", "optim.warmup_steps=5", "checkpoint_every=15",
                 "batch_size=8", "log_every=5", "data.num_workers=0"]
    if cfg.steps is not None:
        sets.append(f"steps={cfg.steps}")
    return sets


def _physics_sets(cfg: DemoConfig) -> list[str]:
    sets = [f"seed={cfg.seed}"] + ([f"device={cfg.device}"] if cfg.device else [])
    if cfg.quick:
        sets += ["steps=20", "data.synth.videos=32", "optim.warmup_steps=5", "checkpoint_every=10",
                 "batch_size=8", "log_every=5", "data.num_workers=0"]
    return sets


def _probe_sets(cfg: DemoConfig) -> list[str]:
    if not cfg.quick:
        return []
    return ["data.synth_train=64", "data.synth_val=32", "optim.epochs=3", "optim.lrs=[1.0e-3]",
            "optim.wds=[0.01]"]


PRETRAIN_SHARE = 0.5  # of a --minutes budget; probing, physics pretraining, surprise and pictures take the rest


def _steps_for_budget(sets: list[str], minutes: float, scratch: Path) -> int:
    """Time a few real steps of the recipe, then fit the pretraining into PRETRAIN_SHARE of the budget."""
    import shutil

    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.train.pretrain import run_pretrain

    stamps: list[float] = []
    cfg = load_recipe(PretrainConfig, "tiny-cpu", sets + ["checkpoint_every=1000000"])
    try:
        run_pretrain(cfg, output_dir=scratch, stop_at=8, on_step=lambda _: stamps.append(time.perf_counter()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    per_step = (stamps[-1] - stamps[2]) / max(len(stamps) - 3, 1)  # skip warm-up steps
    return max(20, int(PRETRAIN_SHARE * minutes * 60 / per_step))


def random_init_model(model_cfg, seed: int, path: Path) -> Path:
    """Write the encoder + predictor that `vjepa pretrain` with `seed` starts from (the random baseline)."""
    from vjepa_cli.models import build_encoder, build_predictor
    from vjepa_cli.models.load import save_model_file

    gen = torch.Generator().manual_seed(seed)
    enc, pred = build_encoder(model_cfg, generator=gen), build_predictor(model_cfg, generator=gen)
    return save_model_file(path, enc, pred, model_cfg, {"source": "random-init", "seed": seed})


def run_demo(cfg: DemoConfig, out_dir: str | Path, stage: Stage | None = None) -> DemoResult:
    """Run every stage into `out_dir` and write `report.md`; returns the numbers shown in the report."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.extract import ExtractConfig, SurpriseConfig
    from vjepa_cli.config.probe import ProbeConfig
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.data.manifest import read_manifest
    from vjepa_cli.data.synth import generate_synth
    from vjepa_cli.eval.probe.run import run_probe
    from vjepa_cli.infer.extract import run_extract
    from vjepa_cli.infer.surprise import read_pairs, run_surprise, score_pairs
    from vjepa_cli.infer.viz import run_viz
    from vjepa_cli.infer.viz_masks import run_viz_masks
    from vjepa_cli.train.export import run_export
    from vjepa_cli.train.pretrain import run_pretrain

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise VjepaError(f"{out} is not empty", hint="choose a new --out folder, or delete this one")
    out.mkdir(parents=True, exist_ok=True)
    tick = stage or (lambda *_: None)
    res = DemoResult(out_dir=out)
    clock = time.perf_counter

    # 1. pretrain on synthetic motion videos (generated into the cache on first use)
    t = clock()
    sets = _pretrain_sets(cfg)
    if cfg.minutes is not None and cfg.steps is None:
        sets.append(f"steps={_steps_for_budget(sets, cfg.minutes, out / '.timing')}")
    pcfg = load_recipe(PretrainConfig, "tiny-cpu", sets)
    tick("pretrain", 0, pcfg.steps)
    pre = run_pretrain(pcfg, output_dir=out / "pretrain", on_step=lambda i: tick("pretrain", i.step, pcfg.steps))
    res.timings["pretrain"] = clock() - t
    res.pretrain = {"steps": pre.step, "clips_per_s": pre.clips_per_s, "final_loss": pre.final_loss,
                    "seconds": pre.seconds}
    if pre.model_path is None:
        raise VjepaError("pretraining ended without a model file")
    tick("pretrain", 1, 1)

    # 2. export the EMA target encoder (+ predictor, so `vjepa predict` works on it) from the run directory
    t = clock()
    model = out / "model.safetensors"
    run_export(out / "pretrain", model, which="target", with_predictor=True)
    random_model = random_init_model(pcfg.model, cfg.seed, out / "random-init.safetensors")
    res.timings["export"] = clock() - t

    # 3. probe data (also gives us videos for extract/viz), then probes on both encoders
    t = clock()
    prcfg = load_recipe(ProbeConfig, "probe/synth-motion", _probe_sets(cfg))
    probes = {}
    for name, path in (("pretrained", model), ("random", random_model)):
        tick(f"probe {name}", 0, 1)
        probes[name] = run_probe(prcfg, model=path, output_dir=out / f"probe-{name}", device=cfg.device)
        tick(f"probe {name}", 1, 1)
    res.timings["probe"] = clock() - t

    # 4. extract features of one motion video and draw its PCA colouring and the recipe's masks
    t = clock()
    motion_dir = out / "data" / "motion"
    generate_synth("motion", motion_dir, n=4, frames=pcfg.data.frames_per_clip, size=pcfg.data.crop_size,
                   seed=123)
    video = read_manifest(motion_dir / "train.csv")[0].path
    ecfg = load_recipe(ExtractConfig, None, ["window.frame_step=1", f"window.frames={pcfg.data.frames_per_clip}"]
                       + ([f"device={cfg.device}"] if cfg.device else []))
    run_extract([video], out / "features.safetensors", ecfg, model_path=model)
    run_viz(video, out / "pca.png", ecfg.window, model_path=model, device=cfg.device)
    run_viz_masks("tiny-cpu", out / "masks.png", sets=_pretrain_sets(cfg))
    res.timings["extract"] = clock() - t

    # 5. surprise (Garrido et al. 2025): a tiny model pretrained on *possible* physics videos (`tiny-physics`)
    # and its random init score matched possible / impossible pairs; the context is read by the online encoder
    t = clock()
    psets = _physics_sets(cfg)
    phcfg = load_recipe(PretrainConfig, "tiny-physics", psets)
    tick("pretrain physics", 0, phcfg.steps)
    phys_run = run_pretrain(phcfg, output_dir=out / "pretrain-physics",
                            on_step=lambda i: tick("pretrain physics", i.step, phcfg.steps))
    res.pretrain["physics_steps"] = phys_run.step
    res.pretrain["physics_seconds"] = phys_run.seconds
    phys_model, phys_ctx = out / "physics-model.safetensors", out / "physics-context.safetensors"
    run_export(out / "pretrain-physics", phys_model, which="target", with_predictor=True)
    run_export(out / "pretrain-physics", phys_ctx, which="context")
    phys_random = random_init_model(phcfg.model, cfg.seed, out / "physics-random-init.safetensors")
    n_pairs = cfg.physics_pairs or (6 if cfg.quick else 40)
    phys = out / "data" / "physics"
    generate_synth("physics", phys, n=2 * n_pairs, frames=32, size=phcfg.data.crop_size, seed=321,
                   impossible=True, val_fraction=0.0)
    pairs = read_pairs(phys)
    scfg = load_recipe(SurpriseConfig, None, [f"window.frames={phcfg.data.frames_per_clip}", "window.frame_step=1",
                                              "window.stride=2", "context_frames=[2,4]"]
                       + ([f"device={cfg.device}"] if cfg.device else []))
    surprise = {"pretrained": score_pairs(pairs, scfg, model_path=phys_model, context_model=phys_ctx),
                "random": score_pairs(pairs, scfg, model_path=phys_random)}
    run_surprise([pairs[0][1]], out / "surprise.csv", scfg, model_path=phys_model, context_model=phys_ctx)
    res.timings["surprise"] = clock() - t

    def pct(v):
        return round(100 * v, 1)

    for label, key in (("motion probe val top-1 (%)", "val_top1"), ("motion probe train top-1 (%)", "train_top1")):
        res.rows.append({"metric": label, "pretrained": pct(probes["pretrained"].best[key]),
                         "random": pct(probes["random"].best[key])})
    for key, label in (("auroc_peak", "physics surprise AUROC (peak: max / mean)"),
                       ("auroc_max", "physics surprise AUROC (max)"), ("auroc_mean", "physics surprise AUROC (mean)"),
                       ("pairwise_acc_peak", "physics pairwise accuracy (peak, %)"),
                       ("pairwise_acc_max", "physics pairwise accuracy (max, %)")):
        f = pct if key.startswith("pairwise") else (lambda v: round(v, 3))
        res.rows.append({"metric": label, "pretrained": f(surprise["pretrained"][key]),
                         "random": f(surprise["random"][key])})
    res.rows.append({"metric": "chance (motion probe, %)", "pretrained": pct(1 / len(probes["pretrained"].classes)),
                     "random": pct(1 / len(probes["random"].classes))})
    res.pictures = {"loss curve": "pretrain/loss.png", "PCA of patch features": "pca.png", "masks": "masks.png",
                    "confusion matrix (pretrained)": "probe-pretrained/confusion.png",
                    "surprise curve (impossible video)": "surprise.png"}
    res.pictures = {k: v for k, v in res.pictures.items() if (out / v).exists()}
    (out / "demo.json").write_text(json.dumps({**res.to_json(), "surprise": {
        k: {m: v for m, v in s.items() if m not in ("per_video", "pairs")} for k, s in surprise.items()}},
        indent=2, default=str))
    res.report = write_report(res, cfg)
    return res


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
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in res.timings.items()), ""]
    if cfg.quick:
        lines += ["This was a `--quick` run: sizes are tiny, so the numbers show the pipeline works, not that "
                  "pretraining helps. Run `vjepa demo` without `--quick` for the real comparison.", ""]
    for name, rel in res.pictures.items():
        lines += [f"## {name}", "", f"![{name}]({rel})", ""]
    path = res.out_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
