"""EMA target encoder (BYOL / I-JEPA / V-JEPA): a frozen copy of the online encoder, updated in place as
`target <- m * target + (1 - m) * online` after each optimizer step (Bardes et al. 2024, section 3.1)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_target(online: nn.Module) -> nn.Module:
    """A frozen deep copy of `online` in eval mode (no gradients)."""
    target = copy.deepcopy(online)
    target.eval()
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: target += (1 - momentum) * (online - target), over all parameters, with one foreach lerp.

    Buffers (e.g. fixed position tables) are not touched: they are equal by construction. Under FSDP both
    models are sharded alike, and the lerp runs on this process's shards.
    """
    from vjepa_cli.train.sharding import local

    tp = [local(p) for p in target.parameters()]
    op = [local(p.detach()) for p in online.parameters()]
    if len(tp) != len(op):
        raise ValueError(f"target has {len(tp)} parameters, online has {len(op)}")
    bad = next((i for i, (a, b) in enumerate(zip(tp, op, strict=True)) if a.shape != b.shape), None)
    if bad is not None:
        raise ValueError(f"target and online parameter {bad} differ in shape: {tuple(tp[bad].shape)} vs "
                         f"{tuple(op[bad].shape)} (sharded differently?)")
    if momentum == 1.0:
        return
    torch._foreach_lerp_(tp, op, 1.0 - float(momentum))
