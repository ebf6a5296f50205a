"""Dense probe tasks from the command line (`vjepa probe --task synth-seg`): the frozen encoder of a model file
(or its random init), a task of `DENSE_TASKS` with its own config, the result and an optional `metrics.json`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from vjepa_cli.config._load import load_recipe, to_dict
from vjepa_cli.config.seg import SegProbeConfig
from vjepa_cli.errors import VjepaError

CONFIGS = {"synth-seg": SegProbeConfig}


def run_dense_probe(task: str, model, *, sets: list[str] | tuple[str, ...] = (), recipe: str | None = None,
                    device: str | None = None, dtype: str = "fp32", random_init: int | str | None = None,
                    output_dir: str | Path | None = None) -> dict:
    """Train and score the dense task's per-token head on `model`'s frozen patch features; returns the result
    as a dict (and writes it to `output_dir/metrics.json` when given)."""
    from vjepa_cli.eval.probe.run import _load_encoder
    from vjepa_cli.eval.probe.tasks.registry import DENSE_TASKS

    if task not in DENSE_TASKS:
        raise VjepaError(f"'{task}' is not a dense task", hint=f"dense tasks: {', '.join(DENSE_TASKS)}")
    cfg = load_recipe(CONFIGS[task], recipe, sets)
    path, encoder, model_id, dev = _load_encoder(model, device, random_init, dtype)
    result = DENSE_TASKS[task](encoder, cfg, dev)
    record = {"task": task, **dataclasses.asdict(result), "model": str(path), "model_id": model_id,
              "config": to_dict(cfg)}
    if output_dir is not None:
        from vjepa_cli.io.atomic import write_text_atomic

        out = Path(output_dir)
        if out.exists() and not out.is_dir():
            raise VjepaError(f"output folder {out} is a file", hint="choose another -o/--output folder")
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "metrics.json", json.dumps(record, indent=1, default=float) + "\n")
        record["outputs"] = {"metrics": str(out / "metrics.json")}
    return record
