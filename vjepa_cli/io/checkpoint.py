"""Training checkpoints: a trainer's state in one safetensors file, written atomically.

A checkpoint holds every tensor needed to continue exactly (the models, e.g. encoder, predictor and target
encoder; optimizer state; RNG states) under prefixed names, and everything else (step, config, optimizer
hyperparameters, sampler position, ...) as JSON metadata: `save_state` / `load_state` convert between that file
and the nested dict of `vjepa_cli.train.trainer.Trainer.state_dict()`.

Where the files go: pretraining keeps `<dir>/step_00001000.safetensors` files (`StepCheckpoints`), whose
`<dir>/latest` names the newest complete one and is only rewritten after that file is safely on disk, so a
crash mid-write leaves the previous checkpoint as `latest`; the world model replaces one file
(`SingleCheckpoint`), atomically, so the same holds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.io.tensors import load_tensors, save_tensors

CKPT_FORMAT = "vjepa-train-checkpoint"
CKPT_VERSION = "1"
LATEST = "latest"
_NAME = re.compile(r"^step_(\d{8,})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def optimizer_to_tensors(state: dict, prefix: str = "optimizer.") -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimizer `state_dict()` -> (flat tensors `optimizer.<param>.<name>`, JSON-able param groups)."""
    tensors = {}
    for pid, st in state["state"].items():
        for name, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"{prefix}{pid}.{name}"] = t
    return tensors, json.loads(json.dumps(state["param_groups"]))


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list[dict],
                           prefix: str = "optimizer.") -> dict:
    """Inverse of `optimizer_to_tensors` (betas come back as tuples)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in groups]
    return {"state": state, "param_groups": groups}


# Metadata that is always text, whatever it looks like: `save_tensors` stores strings as they are and everything
# else as JSON, so a text value that happens to read as JSON (a hex hash of digits only, a run named "42") must
# not be decoded.
TEXT_KEYS = frozenset({"format", "format_version", "kind", "config_hash", "name", "strategy", "created"})


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write one checkpoint atomically (temporary file, fsync, rename)."""
    meta = {"format": CKPT_FORMAT, "format_version": CKPT_VERSION, **meta}
    return save_tensors(path, tensors, meta)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint: (tensors, decoded metadata). A truncated or foreign file is a clear VjepaError."""
    path = Path(path)
    tensors, raw = load_tensors(path, device)
    if raw.get("format") != CKPT_FORMAT:
        raise VjepaError(f"{path} is not a vjepa training checkpoint (format {raw.get('format')!r})",
                         hint="--resume needs a checkpoint written by `vjepa pretrain`")
    if raw.get("format_version") != CKPT_VERSION:
        raise VjepaError(f"{path} has checkpoint format version {raw.get('format_version')}, this vjepa reads "
                         f"{CKPT_VERSION}")
    meta = {}
    for k, v in raw.items():
        if k in TEXT_KEYS:  # a hash of digits only ("157198882789") would otherwise come back as a number
            meta[k] = v
            continue
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
    return tensors, meta


TENSOR_PARTS = ("models", "optimizer", "rng")  # parts of a trainer state stored as tensors; the rest is JSON


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a trainer state (plus what the run says about itself) as one checkpoint, atomically.

    `state["models"]` ({name: state dict}) become tensors `<name>.<key>`, `state["optimizer"]` (a whole
    optimizer state dict) tensors `optimizer.<param>.<name>` plus the metadata `optimizer_groups`,
    `state["rng"]` ({"cpu": tensor, "cuda": [tensor, ...]}) tensors `rng.cpu`, `rng.cuda.<i>`; every other entry
    (step, sampler, scaler, config, ...) is JSON metadata under its own name.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, sd in state["models"].items():
        tensors.update({f"{name}.{k}": v for k, v in sd.items()})
    opt_tensors, groups = optimizer_to_tensors(state["optimizer"])
    tensors.update(opt_tensors)
    tensors["rng.cpu"] = state["rng"]["cpu"]
    tensors.update({f"rng.cuda.{i}": t for i, t in enumerate(state["rng"].get("cuda", []))})
    meta = {k: v for k, v in state.items() if k not in TENSOR_PARTS}
    return save_checkpoint(path, tensors, {**meta, "optimizer_groups": groups})


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint back into the layout `save_state` takes (a truncated or foreign file is a VjepaError).

    Reads the checkpoints of every earlier version: world-model checkpoints named the optimizer's groups
    `param_groups` and had no RNG state.
    """
    tensors, meta = load_checkpoint(path)
    groups = meta.pop("optimizer_groups") if "optimizer_groups" in meta else meta.pop("param_groups", None)
    if groups is None or "step" not in meta:
        raise VjepaError(f"{path} records no step or optimizer groups", hint="resume from a complete checkpoint")
    models: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        name, rest = key.split(".", 1) if "." in key else (key, "")
        if name not in ("optimizer", "rng") and rest:
            models.setdefault(name, {})[rest] = v
    cuda = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in tensors.items() if k.startswith("rng.cuda."))
    rng = {"cpu": tensors["rng.cpu"], "cuda": [v for _, v in cuda]} if "rng.cpu" in tensors else None
    return {**meta, "models": models, "optimizer": optimizer_from_tensors(tensors, groups), "rng": rng}


class StepCheckpoints:
    """Pretraining's checkpoints: `<dir>/step_00001000.safetensors` files, the `latest` pointer, the newest
    `keep_last` kept."""

    def __init__(self, directory: str | Path, keep_last: int):
        self.dir, self.keep_last = Path(directory), keep_last

    def path(self, step: int) -> Path:
        return self.dir / checkpoint_name(step)

    def latest(self) -> Path | None:
        return find_latest(self.dir)

    def any(self) -> bool:
        """Whether the folder holds checkpoints of a run (a `latest` pointer or step files)."""
        return self.latest() is not None or bool(list_checkpoints(self.dir))

    def saved(self, path: Path) -> None:
        """`path` is safely written: make it `latest`, then drop the oldest beyond `keep_last`."""
        write_latest(self.dir, path)
        prune_checkpoints(self.dir, self.keep_last)


class SingleCheckpoint:
    """One checkpoint file, replaced atomically at each save (the world model's `checkpoint.safetensors`)."""

    def __init__(self, path: str | Path):
        self.file = Path(path)
        self.dir = self.file.parent

    def path(self, step: int) -> Path:
        return self.file

    def latest(self) -> Path | None:
        return self.file if self.file.is_file() else None

    def any(self) -> bool:
        return self.file.is_file()

    def saved(self, path: Path) -> None:
        pass


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoint files in `ckpt_dir`, oldest step first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def write_latest(ckpt_dir: str | Path, path: str | Path) -> None:
    """Point `latest` at `path` (a file in `ckpt_dir`), atomically."""
    write_text_atomic(Path(ckpt_dir) / LATEST, Path(path).name + "\n")


def find_latest(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names (None when there is none yet)."""
    d = Path(ckpt_dir)
    pointer = d / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not _NAME.match(name):
        raise VjepaError(f"{pointer} does not name a checkpoint ({name!r})",
                         hint="point it at one of the step_*.safetensors files, or delete it")
    path = d / name
    if not path.is_file():
        raise VjepaError(f"{pointer} names {name}, which does not exist",
                         hint="point it at one of the step_*.safetensors files, or delete it")
    return path


def prune_checkpoints(ckpt_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints (never the one `latest` names); returns the deleted paths."""
    files = list_checkpoints(ckpt_dir)
    latest = find_latest(ckpt_dir)
    doomed = [p for p in files[:-keep] if p != latest] if keep > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
