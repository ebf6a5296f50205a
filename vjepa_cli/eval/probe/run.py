"""`vjepa probe`: frozen evaluation of an encoder with attentive (or linear) probes.

Protocol of V-JEPA (Bardes et al., 2024) and V-JEPA 2 (Assran et al., 2025), `evals/video_classification_frozen`:
the encoder is frozen; each video gives `segments` clips x `views` crops, the segments' tokens are concatenated
per view, a grid of probe heads (lr x wd) is trained on the same batches, and the best head is reported;
prediction = mean of the views' softmax. With the feature cache, every clip is encoded once (a fixed number of
augmented clips per training video) and the heads train from the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vjepa_cli.config.probe import ProbeConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.features import cache_key, cached_split, check_readout, encode_split
from vjepa_cli.eval.probe.heads import (
    HeadGrid,
    build_head,
    classification_metrics,
    steps_per_epoch,
    train_grid,
)
from vjepa_cli.eval.probe.outputs import check_output_dir, track, write_outputs
from vjepa_cli.eval.probe.tasks import TaskData, load_task
from vjepa_cli.runtime import torch_dtype

log = logging.getLogger(__name__)
# progress(phase, advance, total): phase is "generate videos", "encode" or "epochs"; total is set on the first call
ProgressFn = Callable[[str, int, int], None]
Split = tuple[torch.Tensor, torch.Tensor, list[str]]  # features fp16 [n, V, S*N, D'], labels [n], errors
SYNTH_SEED_OFFSET = 7919  # probe videos of synth tasks differ from `vjepa pretrain`'s (seed 0, 1, ...)
RECORDED = "recorded"  # run_probe(random_init=RECORDED): the seed recorded in the model file, else 0


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
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss (mean over heads), val_top1 per head

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
              cache_dir: str | Path | None = None, device: str | None = None,
              random_init: int | Literal["recorded"] | None = None, progress: ProgressFn | None = None,
              dtype: str = "fp32") -> ProbeResult:
    """Train the probe grid of `cfg` on frozen features of `model` and evaluate it on the task's validation split.

    Args:
        cfg: task, data protocol, head and optimiser grid.
        model: model file (see `vjepa_cli.load_model`).
        data_root: the dataset folder (not needed for synth tasks and `manifest`).
        train, val: manifests for task `manifest`.
        output_dir: where to write `probe.safetensors`, `metrics.json`, `confusion.png` (None: write nothing).
            A run that fails writes nothing there (see `vjepa_cli.eval.probe.outputs`).
        cache_dir: feature cache folder (used when `cfg.cache`); None with `cfg.cache`: features stay in memory.
        device: cpu / cuda / cuda:N (None: cuda when available).
        dtype: fp32 / bf16 / fp16, the encoder's precision (the heads train in fp32).
        random_init: probe a freshly initialised encoder of the same architecture instead, built from this seed
            (the `seed` of a `vjepa pretrain` run rebuilds exactly the weights that run started from);
            `"recorded"`: the pretraining seed recorded in the model file, else 0.
        progress: optional callback, see `ProgressFn`.
    """
    if output_dir is not None:
        check_output_dir(Path(output_dir))
    if cfg.log_with:
        from vjepa_cli.train.trackers import check_trackers

        check_trackers(cfg.log_with)
    tick = progress or _no_progress
    path, encoder, model_id, dev = _load_encoder(model, device, random_init, dtype)
    check_readout(encoder, cfg.probe)  # a level or block this encoder lacks fails before any data is made
    data = _task_data(cfg, data_root, train, val, _generation_progress(cfg.data.synth_train + cfg.data.synth_val, tick))
    store = Path(cache_dir) if (cfg.cache and cache_dir is not None) else None
    per_video = cfg.cache_clips_per_video if cfg.cache else cfg.optim.epochs  # training clips encoded per video
    encode = _SplitEncoder(encoder, cfg, dev, model_id, data.images, store, tick,
                           total=len(data.train) * per_video + len(data.val), dtype=torch_dtype(dtype))
    feats = _encode(cfg, data, encode)
    grid, train_s, history = _train(cfg, data, feats, encode, dev)
    rows, best_i, best = _score(cfg, grid, feats, len(data.classes), dev)
    notes = list(data.notes)
    if feats.errors:
        notes.append(f"{len(feats.errors)} unreadable videos skipped (e.g. {feats.errors[0]})")
    res = ProbeResult(
        task=cfg.task, classes=data.classes, kind=cfg.probe.kind, best=rows[best_i], heads=rows,
        per_class=best["per_class"], confusion=best["confusion"], num_train=len(feats.train[0][1]),
        num_val=len(feats.val[1]), skipped=len(feats.errors), notes=notes,
        timings={"encode_s": round(feats.seconds, 3), "train_s": round(train_s, 3)},
        cache_hit=bool(encode.hits) and all(encode.hits), history=history,
    )
    if output_dir is not None:
        res.outputs = write_outputs(Path(output_dir), res, grid.heads[best_i], cfg, path, model_id)
        if cfg.log_with:
            track(cfg, res, Path(output_dir))
    return res



def _no_progress(phase: str, advance: int, total: int) -> None:
    pass


def _generation_progress(total: int, tick: ProgressFn) -> Callable[[int], None]:
    """Turn the synth generator's running count into `tick("generate videos", advance, total)` calls."""
    made = [0]

    def gen_tick(k: int) -> None:
        tick("generate videos", k - made[0], total)
        made[0] = k

    return gen_tick


def _load_encoder(model, device: str | None, random_init: int | str | None,
                  dtype: str = "fp32") -> tuple[Path, torch.nn.Module, str, torch.device]:
    """(model path, frozen encoder, model id, device); with `random_init`, the fresh init of the same architecture."""
    from vjepa_cli.infer.model import load_eval_model, model_fingerprint, require_model_path
    from vjepa_cli.runtime import resolve_device

    dev = resolve_device(device)
    path = require_model_path(model)
    if random_init == RECORDED:
        random_init = recorded_seed(path) or 0
    model_obj = load_eval_model(path, dev, dtype)
    model_id = model_fingerprint(path, model_obj.config, getattr(model_obj, "metadata", None))
    if random_init is not None:
        model_obj = _random_init(model_obj, random_init)
        model_id += f"-random{random_init}"
    return path, model_obj.encoder, model_id, dev


@dataclass
class _SplitEncoder:
    """Encodes one split for one draw of clips (through the feature cache), advancing the "encode" progress."""

    encoder: torch.nn.Module
    cfg: ProbeConfig
    device: torch.device
    model_id: str
    images: bool  # samples are still images
    store: Path | None  # feature cache folder (None: no cache on disk)
    tick: ProgressFn
    total: int  # clips encoded in the whole run (the progress total)
    hits: list[bool] = field(default_factory=list)  # per call: did the features come from the cache
    dtype: torch.dtype = torch.float32  # the encoder's compute precision (features are kept fp16 either way)

    def __call__(self, samples: list[tuple[str, int]], train: bool, draw: int) -> Split:
        def advance(n: int) -> None:
            self.tick("encode", n, self.total)

        def compute() -> Split:
            return encode_split(self.encoder, samples, self.cfg, train, draw, self.device, self.images, advance,
                                dtype=self.dtype)

        precision = "" if self.dtype == torch.float32 else f"-{self.dtype}"  # fp32 keys as before
        key = cache_key(self.model_id + precision, self.cfg.task, samples, self.cfg, train, draw)
        f, y, errs, hit = cached_split(self.store, key, compute)
        if hit:
            advance(len(samples))
        self.hits.append(hit)
        return f, y, errs


@dataclass
class _Features:
    """The encoded task: validation (features, labels), the training draws, and the unreadable videos' messages."""

    val: tuple[torch.Tensor, torch.Tensor]
    train: list[Split]  # one per cached draw (one without the cache: the first epoch's clips)
    errors: list[str]
    seconds: float


def _encode(cfg: ProbeConfig, data: TaskData, encode: _SplitEncoder) -> _Features:
    """Encode the validation split once and the training split once per cached draw; refuse an empty split."""
    t0 = time.perf_counter()
    fv, yv, errors = encode(data.val, False, 0)
    train_sets = [encode(data.train, True, k) for k in range(cfg.cache_clips_per_video if cfg.cache else 1)]
    errors += train_sets[0][2]
    seconds = time.perf_counter() - t0
    if len(yv) == 0 or len(train_sets[0][1]) == 0:
        shown = "; ".join(errors[:3])
        raise VjepaError(f"no readable {'validation' if len(yv) == 0 else 'training'} videos ({len(errors)} failed: {shown})")
    return _Features((fv, yv), train_sets, errors, seconds)


def _train(cfg: ProbeConfig, data: TaskData, feats: _Features, encode: _SplitEncoder,
           dev: torch.device) -> tuple[HeadGrid, float, list[dict]]:
    """Train the grid of heads (one per lr x wd) on the same batches; returns it, the seconds it took and the
    per-epoch history (mean training loss over the heads, each head's validation top-1)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    heads = [build_head(cfg.probe, feats.train[0][0].shape[-1], len(data.classes), gen) for _ in cfg.optim.grid]
    spe = steps_per_epoch(len(feats.train[0][1]), cfg.optim.batch_size)
    grid = HeadGrid(heads, cfg.optim.grid, cfg.optim, spe * cfg.optim.epochs, int(cfg.optim.warmup_epochs * spe)).to(dev)

    def epoch_feats(e: int):
        if cfg.cache:
            f, y, _ = feats.train[e % len(feats.train)]
        elif e == 0:
            f, y, _ = feats.train[0]
        else:  # on the fly: a fresh random clip of every training video, encoded again
            f, y, _ = encode(data.train, True, e)
        return f[:, 0].to(dev), y.to(dev)

    fv, yv = feats.val[0].to(dev), feats.val[1]

    def on_epoch(e: int, loss: float) -> None:  # the curves: mean training loss, every head's val top-1
        top1 = (grid.predict(fv).argmax(-1).cpu() == yv).float().mean(1)  # (H,)
        history.append({"epoch": e + 1, "train_loss": loss, "val_top1": [round(float(v), 6) for v in top1]})
        encode.tick("epochs", 1, cfg.optim.epochs)

    history: list[dict] = []
    t1 = time.perf_counter()
    train_grid(grid, epoch_feats, cfg.optim.epochs, cfg.optim.batch_size, gen, on_epoch=on_epoch)
    return grid, time.perf_counter() - t1, history


def _score(cfg: ProbeConfig, grid: HeadGrid, feats: _Features, num_classes: int,
           dev: torch.device) -> tuple[list[dict], int, dict]:
    """Per head: lr, wd, validation top-1/top-5/mean class accuracy, train top-1 (on the last epoch's clips).

    Returns (rows, index of the best head by validation top-1, the best head's `classification_metrics`).
    """
    fv, yv = feats.val
    pv = grid.predict(fv.to(dev)).cpu()  # (H, n_val, C)
    ftr, ytr, _ = feats.train[(cfg.optim.epochs - 1) % len(feats.train)]
    ptr = grid.predict(ftr.to(dev)).cpu()
    rows = []
    for h, (lr, wd) in enumerate(cfg.optim.grid):
        mv = classification_metrics(pv[h], yv, num_classes)
        rows.append({"lr": lr, "wd": wd, "val_top1": mv["top1"], "val_top5": mv["top5"],
                     "mean_class_acc": mv["mean_class_acc"],
                     "train_top1": float((ptr[h].argmax(-1) == ytr).float().mean())})
    best_i = max(range(len(rows)), key=lambda i: (rows[i]["val_top1"], -i))
    return rows, best_i, classification_metrics(pv[best_i], yv, num_classes)


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
