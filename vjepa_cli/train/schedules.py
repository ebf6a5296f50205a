"""Optimisation schedules as pure functions of the step (0-based optimizer step).

They follow the official `src/utils/schedulers.py` of V-JEPA (Bardes et al. 2024) and V-JEPA 2 (Assran et
al. 2025): linear warmup then cosine decay of the learning rate, cosine weight decay, linear EMA momentum, and
V-JEPA 2's warmup-constant-then-linear-cooldown ("warmup-stable-decay"). The official runs stretch every
schedule over `ipe_scale` (1.25) times the steps actually trained, so training stops at 1/ipe_scale of the
decay: V-JEPA 1 at 90k steps ends at lr ~7.5e-5 (not final_lr), wd ~0.366 and EMA ~0.9996.

Difference from the official code: the official schedulers are stepped before use, so iteration i sees the
value of step i + 1; here step i sees the value of step i (the first step runs at start_lr).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from vjepa_cli.config.train import OptimConfig


def horizon(total_steps: int, ipe_scale: float = 1.0) -> int:
    """The length T_max the schedules are laid out on: int(ipe_scale * total_steps)."""
    return max(1, int(ipe_scale * total_steps))


def warmup_cosine(step: int, *, lr: float, start_lr: float, final_lr: float, warmup: int, t_max: int) -> float:
    """Linear warmup start_lr -> lr over `warmup` steps, then cosine lr -> final_lr over t_max - warmup steps."""
    if step < warmup:
        return start_lr + (lr - start_lr) * step / warmup
    progress = (step - warmup) / max(1, t_max - warmup)
    value = final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(final_lr, value) if final_lr <= lr else min(final_lr, value)


def warmup_constant(step: int, *, lr: float, start_lr: float, warmup: int) -> float:
    """Linear warmup start_lr -> lr, then constant (V-JEPA 2 pretraining)."""
    return start_lr + (lr - start_lr) * step / warmup if step < warmup else lr


def warmup_stable_decay(step: int, *, lr: float, start_lr: float, final_lr: float, warmup: int,
                        decay_start: int, decay_len: int) -> float:
    """Warmup, constant lr, then linear lr -> final_lr over `decay_len` steps from `decay_start`.

    With ipe_scale > 1 the decay is laid out over ipe_scale * anneal steps and stops early, as in V-JEPA 2's
    cooldown (5.25e-4 -> 1e-6 over 1.25 x 12k steps, stopped at ~1.06e-4 after 12k).
    """
    if step < decay_start:
        return warmup_constant(step, lr=lr, start_lr=start_lr, warmup=warmup)
    progress = min(1.0, (step - decay_start) / max(1, decay_len))
    return lr + (final_lr - lr) * progress


def cosine(step: int, *, start: float, end: float, t_max: int) -> float:
    """Cosine from `start` at step 0 to `end` at t_max (the official weight-decay schedule), clamped at `end`."""
    progress = min(1.0, step / max(1, t_max))
    value = end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(end, value) if end <= start else min(end, value)


def linear(step: int, *, start: float, end: float, t_max: int) -> float:
    """Linear from `start` at step 0 to `end` at t_max (the official EMA momentum schedule)."""
    return start + (end - start) * min(1.0, step / max(1, t_max))


class StepValues(NamedTuple):
    lr: float
    wd: float
    ema: float


def optim_values(cfg: OptimConfig, step: int, total_steps: int) -> StepValues:
    """Learning rate, weight decay and EMA momentum at `step` of a `total_steps` run configured by `cfg`."""
    t_max = horizon(total_steps, cfg.ipe_scale)
    if cfg.schedule == "cosine":
        lr = warmup_cosine(step, lr=cfg.lr, start_lr=cfg.start_lr, final_lr=cfg.final_lr,
                           warmup=cfg.warmup_steps, t_max=t_max)
    elif cfg.schedule == "constant":
        lr = warmup_constant(step, lr=cfg.lr, start_lr=cfg.start_lr, warmup=cfg.warmup_steps)
    else:
        decay_start = max(0, total_steps - cfg.anneal_steps)
        lr = warmup_stable_decay(step, lr=cfg.lr, start_lr=cfg.start_lr, final_lr=cfg.final_lr,
                                 warmup=cfg.warmup_steps, decay_start=decay_start,
                                 decay_len=max(1, int(cfg.ipe_scale * cfg.anneal_steps)))
    wd = cosine(step, start=cfg.weight_decay, end=cfg.final_weight_decay, t_max=t_max)
    m0, m1 = cfg.ema
    ema = m0 if cfg.ema_schedule == "constant" else linear(step, start=m0, end=m1, t_max=t_max)
    return StepValues(lr, wd, ema)


def lambda_warmup_hold(step: int, *, value: float, start: int, end: int) -> float:
    """V-JEPA 2.1's context-loss weight (official `Lambda_LinearWarmupHold`): 0 before `start`, a linear ramp to
    `value` over [start, end), then `value`."""
    if step < start:
        return 0.0
    if step >= end:
        return value
    return value * (step - start) / (end - start)
