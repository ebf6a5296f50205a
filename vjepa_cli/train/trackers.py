"""Experiment trackers next to `metrics.jsonl`: Accelerate's TensorBoard, Weights & Biases, MLflow and Aim
trackers, chosen by a recipe's `log_with` (a list). Each receives the run's config once and every scalar of
every logged record; they run on the main process only, as `metrics.jsonl` does.

Their own settings come from their usual environment variables (`WANDB_PROJECT`, `WANDB_MODE=offline`,
`MLFLOW_TRACKING_URI`, ...); TensorBoard and Aim write under the run folder (`<run>/tensorboard`, `<run>/aim`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vjepa_cli.errors import VjepaError

log = logging.getLogger(__name__)
TRACKERS = ("tensorboard", "wandb", "mlflow", "aim")
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim"}


def check_trackers(names: tuple[str, ...] | list[str]) -> None:
    """Fail before any work for an unknown tracker or one whose package is missing (one line each)."""
    from accelerate import utils as au

    available = {"tensorboard": au.is_tensorboard_available, "wandb": au.is_wandb_available,
                 "mlflow": au.is_mlflow_available, "aim": au.is_aim_available}
    for name in names:
        if name not in TRACKERS:
            raise VjepaError(f"unknown tracker '{name}' in log_with", hint=f"use any of {', '.join(TRACKERS)}")
        if not available[name]():
            raise VjepaError(f"log_with: {name} needs the {_PACKAGES[name]} package",
                             hint=f"pip install {_PACKAGES[name]}, or remove it from log_with")


def _flat(config: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat `a.b.c` keys with scalar values (what every tracker accepts as hyperparameters)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
        else:
            out[key] = str(v)
    return out


class Trackers:
    """The trackers of one run: `log(record)` with a `step`, `close()` at the end (also after a failure)."""

    def __init__(self, names: tuple[str, ...] | list[str], run_dir: str | Path, run_name: str, config: dict | None):
        check_trackers(names)
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        self.active = []
        run_dir = Path(run_dir)
        for name in names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            if name == "tensorboard":  # events in <run>/tensorboard (accelerate writes to logging_dir/run_name)
                tracker = cls("tensorboard", run_dir)
            elif name == "aim":
                tracker = cls(run_name, run_dir / "aim")
            elif name == "mlflow":
                tracker = cls(experiment_name=run_name, run_name=run_name)
            else:
                tracker = cls(run_name)
            tracker.start()
            if config:
                tracker.store_init_configuration(_flat(config))
            self.active.append(tracker)

    def log(self, record: dict[str, Any]) -> None:
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        if scalars:
            for t in self.active:
                t.log(scalars, step=int(record["step"]))

    def close(self) -> None:
        for t in self.active:
            try:
                t.finish()
            except Exception as e:  # a tracker that cannot flush must not hide the run's own result
                log.warning("tracker %s did not finish cleanly: %s", t.name, e)
        self.active = []
