"""The demo's stages, each a short function over the library's `run_*` calls, and `run_demo` that chains them:
pretrain -> export -> probe -> extract and draw -> physics surprise -> decoder -> planning -> report
(see `vjepa_cli.demo`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vjepa_cli.demo.decoded import decoded_picture
from vjepa_cli.demo.planning import planning_rows
from vjepa_cli.demo.report import PICTURES, result_rows, write_report, write_summary
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
    dtype: str | None = None  # autocast of the training stages: auto / fp32 / bf16 / fp16 (None: the recipes', auto)
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


def _device_sets(cfg: DemoConfig) -> list[str]:
    return [f"device={cfg.device}"] if cfg.device else []


def _train_sets(cfg: DemoConfig) -> list[str]:
    return _device_sets(cfg) + ([f"dtype={cfg.dtype}"] if cfg.dtype else [])


def _pretrain_sets(cfg: DemoConfig) -> list[str]:
    sets = [f"seed={cfg.seed}"] + _train_sets(cfg)
    if cfg.quick:
        sets += ["steps=30", "data.synth.videos=48", "optim.warmup_steps=5", "checkpoint_every=15",
                 "batch_size=8", "log_every=5", "data.num_workers=0"]
    if cfg.steps is not None:
        sets.append(f"steps={cfg.steps}")
    return sets


def _physics_sets(cfg: DemoConfig) -> list[str]:
    sets = [f"seed={cfg.seed}"] + _train_sets(cfg)
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
    out = _empty_folder(Path(out_dir))
    tick = stage or _no_stage
    res = DemoResult(out_dir=out)
    with _timed(res, "pretrain"):
        pcfg = _pretrain(cfg, out, res, tick)
    with _timed(res, "export"):
        model, random_model = _export(cfg, out, pcfg)
    with _timed(res, "probe"):
        probes = _probe(cfg, out, model, random_model, tick)
    with _timed(res, "extract"):
        _extract_and_draw(cfg, out, pcfg, model)
    with _timed(res, "surprise"):
        surprise, phys = _surprise(cfg, out, res, tick)
    with _timed(res, "decoder"):
        tick("decoder", 0, 1)
        res.pretrain.update(decoded_picture(cfg.quick, out, *phys, cfg.device))
        tick("decoder", 1, 1)
    with _timed(res, "planning"):
        planning, summary = planning_rows(cfg.quick, out, {"pretrained": model, "random": random_model}, cfg.seed,
                                          cfg.device, tick)
        res.pretrain.update(summary)
    res.rows = result_rows(probes, surprise, planning)
    res.pictures = {k: v for k, v in PICTURES.items() if (out / v).exists()}
    write_summary(res, surprise)
    res.report = write_report(res, cfg)
    return res


def _no_stage(name: str, done: int, total: int) -> None:
    pass


def _empty_folder(out: Path) -> Path:
    """`out`, created; refused when it holds anything (the demo never mixes its files with others)."""
    if out.exists() and any(out.iterdir()):
        raise VjepaError(f"{out} is not empty", hint="choose a new -o/--output folder, or delete this one")
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def _timed(res: DemoResult, name: str) -> Iterator[None]:
    """Record the seconds the body took as `res.timings[name]` (in stage order: the report lists them so)."""
    t = time.perf_counter()
    yield
    res.timings[name] = time.perf_counter() - t


def _pretrain(cfg: DemoConfig, out: Path, res: DemoResult, tick: Stage):
    """1. Pretrain `tiny-cpu` on synthetic motion videos (generated into the cache on first use)."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.train.pretrain import run_pretrain

    sets = _pretrain_sets(cfg)
    if cfg.minutes is not None and cfg.steps is None:
        sets.append(f"steps={_steps_for_budget(sets, cfg.minutes, out / '.timing')}")
    pcfg = load_recipe(PretrainConfig, "tiny-cpu", sets)
    tick("pretrain", 0, pcfg.steps)
    pre = run_pretrain(pcfg, output_dir=out / "pretrain", on_step=lambda i: tick("pretrain", i.step, pcfg.steps))
    res.pretrain = {"steps": pre.step, "clips_per_s": pre.clips_per_s, "final_loss": pre.final_loss,
                    "seconds": pre.seconds}
    if pre.model_path is None:
        raise VjepaError("pretraining ended without a model file")
    tick("pretrain", 1, 1)
    return pcfg


def _export(cfg: DemoConfig, out: Path, pcfg) -> tuple[Path, Path]:
    """2. Export the EMA target encoder (+ predictor, so `vjepa predict` works on it), and write its random init."""
    from vjepa_cli.train.export import run_export

    model = out / "model.safetensors"
    run_export(out / "pretrain", model, which="target", with_predictor=True)
    return model, random_init_model(pcfg.model, cfg.seed, out / "random-init.safetensors")


def _probe(cfg: DemoConfig, out: Path, model: Path, random_model: Path, tick: Stage) -> dict:
    """3. Probe `synth-motion` with both encoders (its data also gives videos for extract and viz)."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.probe import ProbeConfig
    from vjepa_cli.eval.probe.run import run_probe

    prcfg = load_recipe(ProbeConfig, "probe/synth-motion", _probe_sets(cfg))
    probes = {}
    for name, path in (("pretrained", model), ("random", random_model)):
        tick(f"probe {name}", 0, 1)
        probes[name] = run_probe(prcfg, model=path, output_dir=out / f"probe-{name}", device=cfg.device)
        tick(f"probe {name}", 1, 1)
    return probes


def _extract_and_draw(cfg: DemoConfig, out: Path, pcfg, model: Path) -> None:
    """4. Extract features of one motion video and draw its PCA colouring and the recipe's masks."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.extract import ExtractConfig
    from vjepa_cli.data.manifest import read_manifest
    from vjepa_cli.data.synth import generate_synth
    from vjepa_cli.infer.extract import run_extract
    from vjepa_cli.infer.viz import run_viz
    from vjepa_cli.infer.viz_masks import run_viz_masks

    motion_dir = out / "data" / "motion"
    generate_synth("motion", motion_dir, n=4, frames=pcfg.data.frames_per_clip, size=pcfg.data.crop_size,
                   seed=123)
    video = read_manifest(motion_dir / "train.csv")[0].path
    ecfg = load_recipe(ExtractConfig, None, ["window.frame_step=1", f"window.frames={pcfg.data.frames_per_clip}"]
                       + _device_sets(cfg))
    run_extract([video], out / "features.safetensors", ecfg, model_path=model)
    run_viz(video, out / "pca.png", ecfg.window, model_path=model, device=cfg.device)
    run_viz_masks("tiny-cpu", out / "masks.png", sets=_pretrain_sets(cfg))


def _physics_models(cfg: DemoConfig, out: Path, res: DemoResult, tick: Stage):
    """Pretrain `tiny-physics` on *possible* physics videos; export its target (+ predictor) and context
    encoders, and write its random init. Returns (config, model, context encoder, random init)."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.train.export import run_export
    from vjepa_cli.train.pretrain import run_pretrain

    phcfg = load_recipe(PretrainConfig, "tiny-physics", _physics_sets(cfg))
    tick("pretrain physics", 0, phcfg.steps)
    phys_run = run_pretrain(phcfg, output_dir=out / "pretrain-physics",
                            on_step=lambda i: tick("pretrain physics", i.step, phcfg.steps))
    res.pretrain["physics_steps"] = phys_run.step
    res.pretrain["physics_seconds"] = phys_run.seconds
    phys_model, phys_ctx = out / "physics-model.safetensors", out / "physics-context.safetensors"
    run_export(out / "pretrain-physics", phys_model, which="target", with_predictor=True)
    run_export(out / "pretrain-physics", phys_ctx, which="context")
    phys_random = random_init_model(phcfg.model, cfg.seed, out / "physics-random-init.safetensors")
    return phcfg, phys_model, phys_ctx, phys_random


def _surprise(cfg: DemoConfig, out: Path, res: DemoResult, tick: Stage) -> tuple[dict, tuple]:
    """5. Surprise (Garrido et al. 2025): the physics model and its random init score matched possible /
    impossible pairs; the context is read by the online encoder. Returns name -> `score_pairs` result, and
    what the decoder stage reads: (model, context encoder, its videos' spec, the first pair, the settings)."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.extract import SurpriseConfig
    from vjepa_cli.data.synth import generate_synth
    from vjepa_cli.infer.surprise import read_pairs, run_surprise, score_pairs

    phcfg, phys_model, phys_ctx, phys_random = _physics_models(cfg, out, res, tick)
    n_pairs = cfg.physics_pairs or (6 if cfg.quick else 40)
    phys = out / "data" / "physics"
    generate_synth("physics", phys, n=2 * n_pairs, frames=32, size=phcfg.data.crop_size, seed=321,
                   impossible=True, val_fraction=0.0)
    pairs = read_pairs(phys)
    scfg = load_recipe(SurpriseConfig, None, [f"window.frames={phcfg.data.frames_per_clip}", "window.frame_step=1",
                                              "window.stride=2", "context_frames=[2,4]"] + _device_sets(cfg))
    surprise = {"pretrained": score_pairs(pairs, scfg, model_path=phys_model, context_model=phys_ctx),
                "random": score_pairs(pairs, scfg, model_path=phys_random)}
    run_surprise([pairs[0][1]], out / "surprise.csv", scfg, model_path=phys_model, context_model=phys_ctx)
    return surprise, (phys_model, phys_ctx, phcfg.data.synth, pairs[0], scfg)
