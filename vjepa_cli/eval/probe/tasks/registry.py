"""The probe tasks, by name: the one place a task is registered.

Every name in `vjepa_cli.config.probe.TASKS` (what a recipe and `--task` accept) has exactly one loader here,
and there is no fallback: `tests/test_probe.py` checks that the two lists agree, and a name missing here is
refused in one line instead of being read with another family's layout.

To add a task: write its family's loader (a `rooted(read)` for a dataset folder, or a `load(req)` of its own),
add the name to `TASKS`, and register it below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.tasks import manifest, synth, synth_seg
from vjepa_cli.eval.probe.tasks.common import Loader, TaskData, TaskRequest, rooted
from vjepa_cli.eval.probe.tasks.diving48 import load_diving48
from vjepa_cli.eval.probe.tasks.images import load_image_folders
from vjepa_cli.eval.probe.tasks.kinetics import load_kinetics
from vjepa_cli.eval.probe.tasks.ssv2 import load_ssv2

_kinetics = rooted(load_kinetics)

TASK_LOADERS: dict[str, Loader] = {
    "ssv2": rooted(load_ssv2),
    "k400": _kinetics,
    "k600": _kinetics,
    "k700": _kinetics,
    "diving48": rooted(load_diving48),
    "in1k": rooted(load_image_folders),
    "manifest": manifest.load,
    "synth-motion": synth.load,
    "synth-shapes": synth.load,
}

# Dense tasks: a label per token, a linear per-token head on frozen patch features, scored by mIoU. Each entry
# is `run(encoder, cfg, device) -> result` over its own config (synth-seg: `SegProbeConfig`).
DENSE_TASKS: dict[str, Callable] = {
    "synth-seg": synth_seg.run_seg_probe,
}


def task_loader(task: str) -> Loader:
    """The loader registered for `task`; an unregistered name is one clear error listing the registered ones."""
    try:
        return TASK_LOADERS[task]
    except KeyError:
        raise VjepaError(f"unknown task '{task}'", "valid: " + ", ".join(TASK_LOADERS)) from None


def load_task(task: str, data_root: Path | None, train: Path | None = None, val: Path | None = None,
              synth_cache: Path | None = None, synth_sizes: tuple[int, int] = (2000, 500), seed: int = 0,
              progress: Callable[[int], None] | None = None) -> TaskData:
    """Read a task's samples. Raises `VjepaError` for an unknown task, a missing root or a wrong layout.

    `progress(k)` reports synthetic videos generated so far (synth tasks, first use only).
    """
    load = task_loader(task)
    data = load(TaskRequest(task, data_root, train, val, synth_cache, synth_sizes, seed, progress))
    if data.missing:
        data.notes.append(f"{data.missing} annotated videos not found on disk (skipped)")
    data.check(f"task {task}")
    return data
