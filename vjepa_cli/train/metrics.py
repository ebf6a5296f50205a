"""Run records: `metrics.jsonl` (one JSON object per logged step), optional trackers, the loss-curve PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Appends records to `metrics.jsonl` (flushed per record) and sends their scalars to the trackers of
    `log_with` (TensorBoard, W&B, MLflow, Aim; see `vjepa_cli.train.trackers`)."""

    def __init__(self, out_dir: Path, tensorboard: bool = False, resume_step: int | None = None,
                 log_with: tuple[str, ...] = (), config: dict | None = None):
        from vjepa_cli.train.trackers import Trackers

        self.path = Path(out_dir) / "metrics.jsonl"
        if resume_step is not None:
            truncate_metrics(self.path, resume_step)
        elif self.path.exists():
            self.path.unlink()
        names = tuple(dict.fromkeys((*log_with, *(("tensorboard",) if tensorboard else ()))))
        self._trackers = Trackers(names, out_dir, Path(out_dir).name, config) if names else None
        self._f = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, sort_keys=False) + "\n")
        self._f.flush()
        if self._trackers is not None:
            self._trackers.log(record)

    def close(self) -> None:
        self._f.close()
        if self._trackers is not None:
            self._trackers.close()


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a metrics.jsonl (a torn last line, from a crash, is skipped)."""
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records after `step` (written by a run that died after its last checkpoint)."""
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


PANELS = (  # (ylabel, keys drawn on one axis, log scale)
    ("loss", ("loss", "rollout", "loss_ctx", "loss_pred"), True),
    ("learning rate", ("lr",), False),
    ("target std (collapse -> 0)", ("target_std",), False),
    ("target effective rank", ("target_erank",), False),
)


def loss_curve_png(metrics_path: str | Path, png_path: str | Path, title: str = "V-JEPA pretraining") -> Path | None:
    """Loss, learning rate and the collapse monitors (target std, effective rank) against step from
    metrics.jsonl, each on its own axis; None when there is no finite loss to plot."""
    from vjepa_cli.data.media import write_png
    from vjepa_cli.plot import stacked_plot

    recs = [r for r in read_metrics(metrics_path) if isinstance(r.get("loss"), (int, float))]
    recs = [r for r in recs if math.isfinite(r["loss"])]
    if not recs:
        return None
    panels = []
    for ylabel, keys, logy in PANELS:
        series = {}
        for k in keys:
            pts = [(r["step"], r[k]) for r in recs if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
            if pts:
                series[k.replace("_", " ")] = ([p[0] for p in pts], [p[1] for p in pts])
        if series:
            positive = all(min(y) > 0 for _, y in series.values())
            panels.append({"series": series, "ylabel": ylabel, "logy": logy and positive})
    img = stacked_plot(panels, title=title, xlabel="step", size=(760, 180 + 150 * len(panels)))
    return write_png(png_path, img)
