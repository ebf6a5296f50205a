"""What a pretraining checkpoint holds, and putting it back: models, optimizer, RNG, sampler position, config.

Tensors are always stored whole. Under FSDP they are gathered from the shards on save and sliced back into
them on load, so checkpoints move freely between one process, DDP and FSDP.
"""

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
RUNTIME_KEYS = ("checkpointing",)  # model config keys that do not define the architecture


def _prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in sd.items()}


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def full_state_dict(module: nn.Module, keep: bool = True) -> dict[str, torch.Tensor]:
    """`module.state_dict()` with sharded tensors gathered whole, one at a time, onto the CPU.

    Under FSDP every process must call it (the gathers are collectives); those with `keep` False get `{}`.
    """
    from vjepa_cli.train.sharding import full, is_sharded

    out = {}
    for k, v in module.state_dict().items():
        if is_sharded(v):
            v = full(v).cpu()
        if keep:
            out[k] = v
    return out


class Gathered:
    """A sharded module's whole weights (`full_state_dict`), standing in for it where only `state_dict()` is
    needed, e.g. to export the model. A collective under FSDP, like `full_state_dict`."""

    def __init__(self, module: nn.Module, keep: bool = True):
        self.sd = full_state_dict(module, keep)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.sd


def _full_optimizer_state(optimizer: torch.optim.Optimizer, keep: bool) -> dict:
    from vjepa_cli.train.sharding import full, is_sharded

    sd = optimizer.state_dict()
    state = {}
    for pid in sorted(sd["state"]):  # the same order on every process
        st = {n: (full(v).cpu() if is_sharded(v) else v) for n, v in sd["state"][pid].items()}
        if keep:
            state[pid] = st
    return {"state": state, "param_groups": sd["param_groups"]}


def save_training_state(path: Path, cfg: PretrainConfig, step: int, modules: dict[str, nn.Module],
                        optimizer: torch.optim.Optimizer, extra: dict, write: bool = True) -> Path:
    """Write the checkpoint of the state after `step` optimizer steps (`extra`: sampler, failures, ...).

    With FSDP-sharded modules every process must call it (the full tensors are gathered collectively) and only
    the one with `write` True writes the file.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name in MODULES:
        tensors.update(_prefixed(name, full_state_dict(modules[name], keep=write)))
    opt_tensors, groups = optimizer_to_tensors(_full_optimizer_state(optimizer, keep=write))
    if not write:
        return path
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
    # Activation checkpointing trades memory for compute and leaves the numbers alone: it may change on resume.
    want = {k: v for k, v in to_dict(cfg.model.resolve()).items() if k not in RUNTIME_KEYS}
    have = {k: v for k, v in meta["model"].items() if k not in RUNTIME_KEYS} if meta.get("model") else None
    if have != want:
        diff = sorted(k for k in set(want) | set(have or {}) if (have or {}).get(k) != want.get(k))
        raise VjepaError(f"{path} was trained with another architecture (differs in: {', '.join(diff)})",
                         hint="resume with the recipe it was written with, or use another --output-dir")
    from vjepa_cli.train.sharding import shard_like

    for name in MODULES:
        have_sd = modules[name].state_dict()
        sd = {k: shard_like(v, have_sd[k]) if k in have_sd else v for k, v in _sub(tensors, name).items()}
        try:
            modules[name].load_state_dict(sd, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise VjepaError(f"{path}: the {name} weights do not fit the model: {first}") from None
    try:
        osd = optimizer_from_tensors(tensors, meta["optimizer_groups"])
        params = [p for g in optimizer.param_groups for p in g["params"]]
        for pid, st in osd["state"].items():
            if pid < len(params):
                osd["state"][pid] = {n: shard_like(v, params[pid]) if v.dim() > 0 else v for n, v in st.items()}
        optimizer.load_state_dict(osd)
    except (KeyError, ValueError, RuntimeError) as e:
        raise VjepaError(f"{path}: the optimizer state does not fit: {e}") from None
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return meta
