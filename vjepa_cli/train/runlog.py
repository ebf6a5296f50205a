"""What a run records besides its checkpoints: `metrics.jsonl` (and the trackers of `log_with`), bad video reads, warnings, the
loss curve; and `Window`, the running sums of a logging interval."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from vjepa_cli.data.dataset import FailureLog
from vjepa_cli.train.metrics import MetricsWriter, loss_curve_png
from vjepa_cli.train.trackers import check_trackers

log = logging.getLogger(__name__)


class RunLog:
    """The run's records. Only the main process writes them (`main`); every process keeps the counts.

    Resumable: `state_dict()` holds the bad video reads; the metrics file's position is the trainer's step: on
    resume it is cut back to the checkpoint's step, dropping records of steps that will run again. The files
    are opened by `open()`, which the trainer calls once the run has done a step, so a run that fails at
    start writes nothing here.
    """

    def __init__(self, out: Path, main: bool, tensorboard: bool = False, log_with: tuple[str, ...] = (),
                 config: dict | None = None):
        self.out, self.main = Path(out), main
        self.log_with = tuple(dict.fromkeys((*log_with, *(("tensorboard",) if tensorboard else ()))))
        self.config = config
        check_trackers(self.log_with)  # at start, not at the first log step
        self.failures = FailureLog()
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._writer: MetricsWriter | None = None

    def open(self, resume_step: int | None) -> None:
        """Start writing `metrics.jsonl`: anew, or after the records up to `resume_step` of the run resumed."""
        if self.main and self._writer is None:
            self._writer = MetricsWriter(self.out, resume_step=resume_step, log_with=self.log_with,
                                         config=self.config)

    def write(self, record: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.write(record)

    def warn(self, key: str, msg: str) -> None:
        """Warn once per `key` (kept in `warnings` for the run's result; logged by the main process)."""
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(msg)
            if self.main:  # one copy, not one per process
                log.warning(msg)

    def loss_curve(self, title: str = "V-JEPA pretraining") -> Path | None:
        """Draw `loss.png` from the metrics; None (and a warning) when it cannot be drawn."""
        try:
            return loss_curve_png(self.out / "metrics.jsonl", self.out / "loss.png", title=title)
        except (OSError, ValueError) as e:  # a plot is never worth failing a finished run
            log.warning("could not draw the loss curve: %s", e)
            return None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def state_dict(self) -> dict[str, Any]:
        return {"failures": self.failures.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("failures"):
            self.failures.load_state_dict(state["failures"])


class Window:
    """Sums of per-step values over a logging interval: `add(loss=..., time=...)` each step, `mean("loss")` at
    the log step, then `reset()`."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.sums: dict[str, float] = defaultdict(float)

    def add(self, **values: float) -> None:
        self.n += 1
        for k, v in values.items():
            self.sums[k] += v

    def mean(self, key: str) -> float:
        return self.sums[key] / max(self.n, 1)
