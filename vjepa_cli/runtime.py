"""The small tables and helpers every layer shares: device and dtype resolution, stable hashes, video
file extensions. A leaf module: it imports nothing of the package but `errors`."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import torch

from vjepa_cli.errors import VjepaError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float": "fp32"}

# Containers FFmpeg (through decord or PyAV) reads; folder inputs and dataset indexes look for these.
VIDEO_EXTS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                        ".3gp", ".ogv", ".gif"})
# Still images (read as one-frame clips where a command accepts images).
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


def resolve_device(device: str | torch.device | None, default: str = "auto",
                   hint: str = "use --device cpu") -> torch.device:
    """cpu, cuda, cuda:N, or "auto" (cuda when available, else cpu); None and "" mean `default`.

    Raises VjepaError for an unknown device or CUDA asked for where there is none (`hint` says what to do)."""
    if device is None or str(device) == "":
        device = default
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise VjepaError(f"unknown device '{device}': {e}", hint="use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VjepaError(f"device '{device}' asked for, but CUDA is not available", hint=hint)
    return dev


def torch_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """"fp32"/"bf16"/"fp16" (or float32/bfloat16/float16/half, or a torch.dtype) -> torch.dtype; None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = DTYPE_ALIASES.get(str(dtype), str(dtype))
    if name not in DTYPES:
        raise VjepaError(f"unknown dtype '{dtype}'", hint="use fp32, bf16 or fp16")
    return DTYPES[name]


def mixed_precision(setting: str, device: torch.device) -> str:
    """A recipe's autocast setting for Accelerate: "auto" is bf16 on CUDA and "no" elsewhere; "fp32" means "no"."""
    if setting == "auto":
        return "bf16" if device.type == "cuda" else "no"
    return "no" if setting == "fp32" else setting


def autocast(device: torch.device, dtype: str | torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device` (weights stay as they are); fp32 or None: no autocast."""
    dt = torch_dtype(dtype)
    if dt is None or dt == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dt)


def stable_hash(obj: Any, length: int = 16) -> str:
    """The first `length` hex digits of the sha256 of `obj` as canonical JSON (sorted keys; non-JSON values
    by their str). Stable across runs and machines: names caches, settings and configs in file metadata."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
