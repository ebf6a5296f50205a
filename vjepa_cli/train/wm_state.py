"""Resumable training state of the world model: predictor weights, AdamW state and the step, in one atomic
safetensors checkpoint (the pretraining trainer's format helpers, `vjepa_cli.io.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.checkpoint import (
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)

KIND = "world-model"


def save_train_state(path: Path, predictor: torch.nn.Module, opt: torch.optim.Optimizer, step: int,
                     cfg_hash: str) -> Path:
    tensors = {f"predictor.{k}": v for k, v in predictor.state_dict().items()}
    opt_tensors, groups = optimizer_to_tensors(opt.state_dict())
    tensors.update(opt_tensors)
    return save_checkpoint(path, tensors, {"kind": KIND, "step": step, "config_hash": cfg_hash,
                                           "param_groups": groups})


def load_train_state(path: Path, predictor: torch.nn.Module, opt: torch.optim.Optimizer, cfg_hash: str) -> int:
    """Load into `predictor` and `opt` (strictly); returns the step to continue from."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != KIND:
        raise VjepaError(f"{path} is not a world-model training checkpoint")
    if meta.get("config_hash") != cfg_hash:
        raise VjepaError(f"{path} was written with a different recipe", "resume with the same recipe and --set values")
    sd = {k[len("predictor."):]: v for k, v in tensors.items() if k.startswith("predictor.")}
    predictor.load_state_dict(sd, strict=True)
    opt.load_state_dict(optimizer_from_tensors(tensors, meta["param_groups"]))
    return int(meta["step"])
