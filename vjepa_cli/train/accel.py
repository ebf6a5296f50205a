"""One way to make the Accelerate `Accelerator` every trainer runs under.

Accelerate keeps its process state in a singleton: a second `Accelerator` in the same Python process with
another mixed precision (say an fp32 run, then a bf16 one, from a notebook or a test) is refused. In a
single-process run nothing else shares that state, so it is reset and the new setting takes over; under a
distributed launch (torchrun, accelerate launch) the state is the launcher's and is left alone.
"""

from __future__ import annotations

from typing import Any

import torch


def make_accelerator(device: torch.device, mixed_precision: str, **kwargs: Any):
    """An Accelerator on `device`'s kind (CPU or CUDA) with `mixed_precision` ("no", "bf16", "fp16")."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, DistributedType, PartialState

    if AcceleratorState._shared_state and PartialState().distributed_type == DistributedType.NO:
        current = AcceleratorState._shared_state.get("_mixed_precision", mixed_precision)
        if current != mixed_precision:
            AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=device.type == "cpu", mixed_precision=mixed_precision, **kwargs)
