"""What `vjepa probe` writes: `probe.safetensors` (the best head), `metrics.json`, `confusion.png` and
`curves.png` (per-epoch training loss and validation top-1).

The files are written into a scratch folder inside the output folder and moved into place only once all of them
exist, so a run that fails leaves nothing it created: a new output folder is removed again, and one that
existed keeps its files as they were (issue 18).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.probe import ProbeConfig
from vjepa_cli.errors import VjepaError

if TYPE_CHECKING:
    from vjepa_cli.eval.probe.run import ProbeResult


def check_output_dir(out: Path) -> None:
    """Refuse, before any work, an output path that cannot become a folder."""
    if out.exists() and not out.is_dir():
        raise VjepaError(f"output folder {out} is a file", "choose another -o/--output folder")


def _outermost_missing(folder: Path) -> Path | None:
    """The highest of `folder` and its parents that does not exist yet (what creating `folder` would create)."""
    missing = None
    for p in (folder, *folder.parents):
        if p.exists():
            break
        missing = p
    return missing


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield a scratch folder in `out`; on success its files replace those of the same name in `out`.

    On any failure (an exception, Ctrl-C) the scratch folder is removed, and so is every folder this created
    on the way to `out`; files already in `out` are never touched until every new file has been written.
    """
    created = _outermost_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        yield stage
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def confusion_view(conf: np.ndarray, top_n: int = 25) -> list[int]:
    """The classes to draw: all of them up to `top_n`, else the `top_n` with the most confusions (off-diagonal
    counts in their row and column), in their original order."""
    C = conf.shape[0]
    if C <= top_n:
        return list(range(C))
    off = conf - np.diag(np.diag(conf))
    return sorted(np.argsort(-(off.sum(0) + off.sum(1)), kind="stable")[:top_n].tolist())


def _confusion_image(res: ProbeResult) -> np.ndarray:
    """The row-normalised confusion matrix (rows = true class) with class names; counts written in the cells."""
    from vjepa_cli.plot import heatmap

    C = len(res.classes)
    idx = confusion_view(res.confusion)
    note = f" ({len(idx)} most confused of {C} classes)" if len(idx) < C else ""
    rownorm = res.confusion / np.maximum(res.confusion.sum(1, keepdims=True), 1)
    sub = np.ix_(idx, idx)
    names = [str(res.classes[i]) for i in idx]
    cell = max(14, min(40, 900 // max(len(idx), 1)))
    return heatmap(rownorm[sub], names, names, title=f"{res.task}: top-1 {res.best['val_top1']:.3f}{note}",
                   cell=cell, annotate=len(idx) <= 30, xlabel="predicted class", ylabel="true class",
                   values=res.confusion[sub])


def _curves_image(res: ProbeResult) -> np.ndarray:
    """Per epoch: the training loss (mean over the heads) and the validation top-1 of the best head and of the
    best head at each epoch."""
    from vjepa_cli.plot import stacked_plot

    ep = [h["epoch"] for h in res.history]
    best_i = res.heads.index(res.best) if res.best in res.heads else 0
    val = {f"head {best_i} (best at the end)": (ep, [h["val_top1"][best_i] for h in res.history]),
           "max over heads": (ep, [max(h["val_top1"]) for h in res.history])}
    return stacked_plot([{"series": {"train loss": (ep, [h["train_loss"] for h in res.history])}, "ylabel": "loss"},
                         {"series": val, "ylabel": "validation top-1"}],
                        title=f"{res.task} probe, {len(res.heads)} heads", xlabel="epoch", size=(640, 480))


def write_outputs(out: Path, res: ProbeResult, head: torch.nn.Module, cfg: ProbeConfig, model, model_id: str) -> dict:
    """probe.safetensors (best head; classes and settings in the metadata), metrics.json, confusion.png."""
    from vjepa_cli.data.media import write_png
    from vjepa_cli.io.atomic import write_text_atomic
    from vjepa_cli.io.tensors import save_tensors

    meta = {"format": "vjepa-probe", "task": res.task, "classes": res.classes, "kind": cfg.probe.kind,
            "probe": to_dict(cfg.probe), "lr": res.best["lr"], "wd": res.best["wd"], "val_top1": res.best["val_top1"],
            "model": str(model), "model_id": model_id, "data": to_dict(cfg.data)}
    metrics = {**res.to_json(), "model": str(model), "model_id": model_id, "config": to_dict(cfg)}
    with staged_folder(out) as stage:
        save_tensors(stage / "probe.safetensors", {k: v.detach().float() for k, v in head.state_dict().items()}, meta)
        write_text_atomic(stage / "metrics.json", json.dumps(metrics, indent=1, default=float) + "\n")
        write_png(stage / "confusion.png", _confusion_image(res))
        if res.history:
            write_png(stage / "curves.png", _curves_image(res))
    written = {"weights": str(out / "probe.safetensors"), "metrics": str(out / "metrics.json"),
               "confusion": str(out / "confusion.png")}
    return {**written, "curves": str(out / "curves.png")} if res.history else written


def track(cfg: ProbeConfig, res: ProbeResult, out: Path) -> None:
    """Send the per-epoch curves and the final scores to the trackers of `log_with`."""
    from vjepa_cli.train.trackers import Trackers

    trackers = Trackers(cfg.log_with, out, f"probe-{cfg.task}", to_dict(cfg))
    try:
        for h in res.history:
            trackers.log({"step": h["epoch"], "train_loss": h["train_loss"], "val_top1_max": max(h["val_top1"])})
        trackers.log({"step": cfg.optim.epochs, **{f"best_{k}": v for k, v in res.best.items()
                                                    if isinstance(v, (int, float))}})
    finally:
        trackers.close()
