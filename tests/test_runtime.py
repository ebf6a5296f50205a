"""The shared device / precision helpers (`vjepa_cli.runtime`, `vjepa_cli.train.accel`)."""

from __future__ import annotations

import pytest
import torch

from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import autocast, mixed_precision, resolve_device, torch_dtype
from vjepa_cli.train.accel import make_accelerator


def test_mixed_precision_spellings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
    assert mixed_precision("auto", cpu) == "no" and mixed_precision("auto", cuda) == "bf16"
    assert mixed_precision("fp32", cuda) == "no" and mixed_precision("bf16", cpu) == "bf16"
    assert mixed_precision("no", cuda) == "no"


def test_autocast_changes_matmul_precision_only_when_asked():
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), None):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(VjepaError, match="unknown dtype 'fp64'"):
        autocast(torch.device("cpu"), "fp64")
    assert torch_dtype("half") == torch.float16


def test_accelerators_with_different_precisions_in_one_process():
    """Accelerate refuses a second Accelerator with another precision; one process may train fp32 then bf16."""
    cpu = torch.device("cpu")
    for mp in ("no", "bf16", "no"):
        acc = make_accelerator(cpu, mp)
        assert acc.mixed_precision == mp
        with acc.autocast():
            out = torch.randn(8, 8) @ torch.randn(8, 8)
        assert out.dtype == (torch.bfloat16 if mp == "bf16" else torch.float32)


def test_resolve_device_errors():
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(VjepaError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
