"""Built-in synthetic tasks (`synth-motion`, `synth-shapes`): generated on first use into a cache folder, no data needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vjepa_cli.eval.probe.tasks.common import TaskData, TaskRequest
from vjepa_cli.eval.probe.tasks.manifest import load_manifests


def load_synth(task: str, cache: Path | None, n_train: int, n_val: int, seed: int,
               progress: Callable[[int], None] | None = None) -> TaskData:
    """Generate (once, into the synth cache) and read the built-in synthetic task; `progress(k)`: k videos made."""
    from vjepa_cli.config.data import SynthSpec
    from vjepa_cli.data.synth import ensure_synth

    n = n_train + n_val
    spec = SynthSpec(task=task.removeprefix("synth-"), videos=n, seed=seed, val_fraction=n_val / n)
    res = ensure_synth(spec, None if cache is None else str(cache), progress=progress)
    data = load_manifests(res.train_manifest, res.val_manifest)
    data.classes = list(res.class_names)
    return data


def load(req: TaskRequest) -> TaskData:
    return load_synth(req.task, req.synth_cache, req.synth_sizes[0], req.synth_sizes[1], req.seed, req.progress)
