"""`vjepa probe`: frozen evaluation of an encoder with attentive (or linear) probes.

Protocol of V-JEPA (Bardes et al., 2024) and V-JEPA 2 (Assran et al., 2025), `evals/video_classification_frozen`:
the encoder is frozen; each video gives `segments` clips x `views` crops, the segments' tokens are concatenated
per view, a grid of probe heads (lr x wd) is trained on the same batches, and the best head is reported;
prediction = mean of the views' softmax. With the feature cache, every clip is encoded once (a fixed number of
augmented clips per training video) and the heads train from the cache.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.probe import ProbeConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.features import cache_key, cached_split, encode_split
from vjepa_cli.eval.probe.heads import (
    HeadGrid,
    build_head,
    classification_metrics,
    steps_per_epoch,
    train_grid,
)
from vjepa_cli.eval.probe.tasks import TaskData, load_task

log = logging.getLogger(__name__)
# progress(phase, advance, total): phase is "generate videos", "encode" or "epochs"; total is set on the first call
ProgressFn = Callable[[str, int, int], None]
SYNTH_SEED_OFFSET = 7919  # probe videos of synth tasks differ from `vjepa pretrain`'s (seed 0, 1, ...)


@dataclass
class ProbeResult:
    """What `run_probe` measured and wrote."""

    task: str
    classes: list[str]
    kind: str  # probe head kind
    best: dict  # {"lr", "wd", "val_top1", "val_top5", "train_top1", "mean_class_acc"} of the best head
    heads: list[dict]  # the same for every head of the grid
    per_class: list[float]  # best head: validation accuracy of each class (nan: no validation video)
    confusion: np.ndarray  # best head: (C, C) counts, rows = true class
    num_train: int  # training videos used
    num_val: int  # validation videos used
    skipped: int  # unreadable videos skipped
    notes: list[str] = field(default_factory=list)  # warnings (missing videos, empty classes, ...)
    timings: dict = field(default_factory=dict)  # seconds: encode, train
    cache_hit: bool = False  # every feature came from the cache
    outputs: dict = field(default_factory=dict)  # name -> path of what was written

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "confusion"}
        d["confusion"] = self.confusion.tolist()
        return d


def recorded_seed(path: str | Path) -> int | None:
    """The pretraining `seed` stored in one of our model files (None for other files or older ones)."""
    from vjepa_cli.io.convert import sniff
    from vjepa_cli.io.tensors import meta_json, read_metadata

    if sniff(Path(path)) != "safetensors":
        return None
    prov = meta_json(read_metadata(path), "provenance", {})
    seed = prov.get("seed") if isinstance(prov, dict) else None
    return seed if isinstance(seed, int) else None


def _random_init(model, seed: int):
    """Replace the encoder's weights by a fresh init of the same architecture (the random baseline)."""
    from vjepa_cli.models import build_encoder

    p = next(model.encoder.parameters())
    enc = build_encoder(model.config, generator=torch.Generator().manual_seed(seed))
    model.encoder = enc.to(device=p.device, dtype=p.dtype).eval()
    return model


def run_probe(cfg: ProbeConfig, *, model: str | Path | None, data_root: str | Path | None = None,
              train: str | Path | None = None, val: str | Path | None = None, output_dir: str | Path | None = None,
              cache_dir: str | Path | None = None, device: str | None = None, random_init: int | None = None,
              progress: ProgressFn | None = None) -> ProbeResult:
    """Train the probe grid of `cfg` on frozen features of `model` and evaluate it on the task's validation split.

    Args:
        cfg: task, data protocol, head and optimiser grid.
        model: model file (see `vjepa_cli.load_model`).
        data_root: the dataset folder (not needed for synth tasks and `manifest`).
        train, val: manifests for task `manifest`.
        output_dir: where to write `probe.safetensors`, `metrics.json`, `confusion.png` (None: write nothing).
        cache_dir: feature cache folder (used when `cfg.cache`); None with `cfg.cache`: features stay in memory.
        device: cpu / cuda / cuda:N (None: cuda when available).
        random_init: probe a freshly initialised encoder of the same architecture instead, built from this seed
            (the `seed` of a `vjepa pretrain` run rebuilds exactly the weights that run started from).
        progress: optional callback, see `ProgressFn`.
    """
    from vjepa_cli.infer.model import load_eval_model, model_fingerprint, require_model_path
    from vjepa_cli.runtime import resolve_device

    dev = resolve_device(device)
    model = require_model_path(model)
    model_obj = load_eval_model(model, dev)
    model_id = model_fingerprint(model, model_obj.config, getattr(model_obj, "metadata", None))
    if random_init is not None:
        model_obj = _random_init(model_obj, random_init)
        model_id += f"-random{random_init}"
    tick = progress or (lambda *_: None)
    n_synth = cfg.data.synth_train + cfg.data.synth_val
    made = [0]

    def gen_tick(k: int) -> None:
        tick("generate videos", k - made[0], n_synth)
        made[0] = k

    data = _task_data(cfg, data_root, train, val, gen_tick)
    enc = model_obj.encoder

    t0 = time.perf_counter()
    K = cfg.cache_clips_per_video if cfg.cache else 1
    store = Path(cache_dir) if (cfg.cache and cache_dir is not None) else None
    hits = []

    def split(samples, is_train, draw, phase):
        key = cache_key(model_id, cfg.task, samples, cfg, is_train, draw)

        def compute():
            return encode_split(enc, samples, cfg, is_train, draw, dev, data.images, lambda n: tick(phase, n, total_enc))

        f, y, errs, hit = cached_split(store, key, compute)
        if hit:
            tick(phase, len(samples), total_enc)
        hits.append(hit)
        return f, y, errs

    total_enc = len(data.train) * (K if cfg.cache else cfg.optim.epochs) + len(data.val)
    fv, yv, errors = split(data.val, False, 0, "encode")
    train_sets = [split(data.train, True, k, "encode") for k in range(K)]
    errors += train_sets[0][2]
    enc_s = time.perf_counter() - t0
    if len(yv) == 0 or len(train_sets[0][1]) == 0:
        shown = "; ".join(errors[:3])
        raise VjepaError(f"no readable {'validation' if len(yv) == 0 else 'training'} videos ({len(errors)} failed: {shown})")

    dim = train_sets[0][0].shape[-1]
    C = len(data.classes)
    gen = torch.Generator().manual_seed(cfg.seed)
    heads = [build_head(cfg.probe, dim, C, gen) for _ in cfg.optim.grid]
    n_tr = len(train_sets[0][1])
    spe = steps_per_epoch(n_tr, cfg.optim.batch_size)
    grid = HeadGrid(heads, cfg.optim.grid, cfg.optim, spe * cfg.optim.epochs, int(cfg.optim.warmup_epochs * spe)).to(dev)

    def epoch_feats(e: int):
        if cfg.cache:
            f, y, _ = train_sets[e % K]
        elif e == 0:
            f, y, _ = train_sets[0]
        else:  # on the fly: a fresh random clip of every training video, encoded again
            f, y, _ = split(data.train, True, e, "encode")
        return f[:, 0].to(dev), y.to(dev)

    t1 = time.perf_counter()
    train_grid(grid, epoch_feats, cfg.optim.epochs, cfg.optim.batch_size, gen,
               on_epoch=lambda e, loss: tick("epochs", 1, cfg.optim.epochs))
    train_s = time.perf_counter() - t1

    pv = grid.predict(fv.to(dev)).cpu()  # (H, n_val, C)
    ftr, ytr, _ = train_sets[(cfg.optim.epochs - 1) % K] if cfg.cache else train_sets[0]
    ptr = grid.predict(ftr.to(dev)).cpu()
    rows = []
    for h, (lr, wd) in enumerate(cfg.optim.grid):
        mv = classification_metrics(pv[h], yv, C)
        rows.append({"lr": lr, "wd": wd, "val_top1": mv["top1"], "val_top5": mv["top5"],
                     "mean_class_acc": mv["mean_class_acc"],
                     "train_top1": float((ptr[h].argmax(-1) == ytr).float().mean())})
    best_i = max(range(len(rows)), key=lambda i: (rows[i]["val_top1"], -i))
    mb = classification_metrics(pv[best_i], yv, C)
    skipped = len(errors)
    notes = list(data.notes)
    if skipped:
        notes.append(f"{skipped} unreadable videos skipped (e.g. {errors[0]})")
    res = ProbeResult(
        task=cfg.task, classes=data.classes, kind=cfg.probe.kind, best=rows[best_i], heads=rows,
        per_class=mb["per_class"], confusion=mb["confusion"], num_train=n_tr, num_val=len(yv), skipped=skipped,
        notes=notes, timings={"encode_s": round(enc_s, 3), "train_s": round(train_s, 3)},
        cache_hit=bool(hits) and all(hits),
    )
    if output_dir is not None:
        res.outputs = write_outputs(Path(output_dir), res, grid.heads[best_i], cfg, model, model_id)
    return res


def _task_data(cfg: ProbeConfig, data_root, train, val, progress) -> TaskData:
    data = load_task(cfg.task, Path(data_root) if data_root else None, Path(train) if train else None,
                     Path(val) if val else None, synth_sizes=(cfg.data.synth_train, cfg.data.synth_val),
                     seed=SYNTH_SEED_OFFSET + cfg.seed, progress=progress)
    if cfg.data.max_train is not None:
        data.train = _subset(data.train, cfg.data.max_train, cfg.seed)
    if cfg.data.max_val is not None:
        data.val = _subset(data.val, cfg.data.max_val, cfg.seed + 1)
    return data


def _subset(samples: list, n: int, seed: int) -> list:
    if n >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), n, replace=False))
    return [samples[i] for i in keep]


def write_outputs(out: Path, res: ProbeResult, head: torch.nn.Module, cfg: ProbeConfig, model, model_id: str) -> dict:
    """probe.safetensors (best head; classes and settings in the metadata), metrics.json, confusion.png."""
    from vjepa_cli.data.media import write_png
    from vjepa_cli.io.atomic import write_text_atomic
    from vjepa_cli.io.tensors import save_tensors
    from vjepa_cli.plot import heatmap

    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "vjepa-probe", "task": res.task, "classes": res.classes, "kind": cfg.probe.kind,
            "probe": to_dict(cfg.probe), "lr": res.best["lr"], "wd": res.best["wd"], "val_top1": res.best["val_top1"],
            "model": str(model), "model_id": model_id, "data": to_dict(cfg.data)}
    weights = save_tensors(out / "probe.safetensors", {k: v.detach().float() for k, v in head.state_dict().items()}, meta)
    metrics = {**res.to_json(), "model": str(model), "model_id": model_id, "config": to_dict(cfg)}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=float) + "\n")
    conf = res.confusion.astype(float)
    rownorm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    C = len(res.classes)
    labels = [str(i) for i in range(C)]
    img = heatmap(rownorm, labels, labels, title=f"{res.task} top-1 {res.best['val_top1']:.3f}",
                  cell=max(6, min(28, 640 // max(C, 1))), annotate=C <= 24)
    png = write_png(out / "confusion.png", img)
    return {"weights": str(weights), "metrics": str(out / "metrics.json"), "confusion": str(png)}
