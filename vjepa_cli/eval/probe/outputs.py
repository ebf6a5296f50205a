"""What `vjepa probe` writes: `probe.safetensors` (the best head), `metrics.json` and `confusion.png`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.probe import ProbeConfig

if TYPE_CHECKING:
    from vjepa_cli.eval.probe.run import ProbeResult


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
    from vjepa_cli.io.atomic import write_text_atomic
    from vjepa_cli.io.png import write_png
    from vjepa_cli.io.tensors import save_tensors

    meta = {"format": "vjepa-probe", "task": res.task, "classes": res.classes, "kind": cfg.probe.kind,
            "probe": to_dict(cfg.probe), "lr": res.best["lr"], "wd": res.best["wd"], "val_top1": res.best["val_top1"],
            "model": str(model), "model_id": model_id, "data": to_dict(cfg.data)}
    metrics = {**res.to_json(), "model": str(model), "model_id": model_id, "config": to_dict(cfg)}
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(out / "probe.safetensors", {k: v.detach().float() for k, v in head.state_dict().items()}, meta)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1, default=float) + "\n")
    write_png(out / "confusion.png", _confusion_image(res))
    return {"weights": str(out / "probe.safetensors"), "metrics": str(out / "metrics.json"),
            "confusion": str(out / "confusion.png")}
