"""What `vjepa probe` writes: `probe.safetensors` (the best head), `metrics.json` and `confusion.png`.

The files are written into a scratch folder inside the output folder and moved into place only once all three
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
        raise VjepaError(f"output folder {out} is a file", "choose another --output-dir")


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


def _confusion_image(res: ProbeResult) -> np.ndarray:
    """The row-normalised confusion matrix as a heatmap (rows = true class)."""
    from vjepa_cli.plot import heatmap

    conf = res.confusion.astype(float)
    rownorm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    C = len(res.classes)
    labels = [str(i) for i in range(C)]
    return heatmap(rownorm, labels, labels, title=f"{res.task} top-1 {res.best['val_top1']:.3f}",
                   cell=max(6, min(28, 640 // max(C, 1))), annotate=C <= 24)


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
    return {"weights": str(out / "probe.safetensors"), "metrics": str(out / "metrics.json"),
            "confusion": str(out / "confusion.png")}
