"""What a pretraining checkpoint holds, and putting it back: models, optimizer, RNG, sampler position, config."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import torch
from torch import nn

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import (
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)

log = logging.getLogger(__name__)
MODULES = ("encoder", "predictor", "target_encoder")


def _prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in sd.items()}


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def save_training_state(path: Path, cfg: PretrainConfig, step: int, modules: dict[str, nn.Module],
                        optimizer: torch.optim.Optimizer, extra: dict) -> Path:
    """Write the checkpoint of the state after `step` optimizer steps (`extra`: sampler, failures, ...)."""
    tensors: dict[str, torch.Tensor] = {}
    for name in MODULES:
        tensors.update(_prefixed(name, modules[name].state_dict()))
    opt_tensors, groups = optimizer_to_tensors(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    meta = {
        "step": step, "config": to_dict(cfg), "model": to_dict(cfg.model.resolve()), "optimizer_groups": groups,
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(), **extra,
    }
    return save_checkpoint(path, tensors, meta)


def load_training_state(path: Path, cfg: PretrainConfig, modules: dict[str, nn.Module],
                        optimizer: torch.optim.Optimizer) -> dict:
    """Restore models, optimizer and RNG from `path` in place; returns the checkpoint's metadata.

    A checkpoint of another architecture, or one whose tensors do not fit, is a VjepaError.
    """
    tensors, meta = load_checkpoint(path)
    want = to_dict(cfg.model.resolve())
    have = meta.get("model")
    if have != want:
        diff = sorted(k for k in set(want) | set(have or {}) if (have or {}).get(k) != want.get(k))
        raise VjepaError(f"{path} was trained with another architecture (differs in: {', '.join(diff)})",
                         hint="resume with the recipe it was written with, or use another --output-dir")
    for name in MODULES:
        try:
            modules[name].load_state_dict(_sub(tensors, name), strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise VjepaError(f"{path}: the {name} weights do not fit the model: {first}") from None
    try:
        optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["optimizer_groups"]))
    except (KeyError, ValueError, RuntimeError) as e:
        raise VjepaError(f"{path}: the optimizer state does not fit: {e}") from None
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return meta
