"""safetensors read/write with JSON-able metadata, written atomically.

safetensors metadata is `dict[str, str]`; we store non-string values as JSON and decode them on read
for the keys listed in `json_keys`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import atomic_path


def _meta_str(metadata: dict[str, Any] | None) -> dict[str, str]:
    out = {}
    for k, v in (metadata or {}).items():
        out[str(k)] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> Path:
    """Write `tensors` (made contiguous, moved to CPU) and `metadata` to `path` atomically."""
    path = Path(path)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(clean, str(tmp), metadata=_meta_str(metadata))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The raw string metadata of a safetensors file (cheap: reads the header only)."""
    from safetensors import safe_open

    path = Path(path)
    _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise VjepaError(f"{path} is not a readable safetensors file: {e}") from None


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor and the string metadata; a corrupt file is a clear VjepaError."""
    path = Path(path)
    _check_exists(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise VjepaError(f"{path} is not a readable safetensors file: {e}") from None
    return tensors, meta


def meta_json(meta: dict[str, str], key: str, default: Any = None) -> Any:
    """Decode one JSON-encoded metadata value (or return `default` when absent)."""
    if key not in meta:
        return default
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError:
        return meta[key]


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise VjepaError(f"file not found: {path}")
    if path.is_dir():
        raise VjepaError(f"{path} is a directory, expected a .safetensors file")
