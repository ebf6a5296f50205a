"""safetensors read/write with JSON-able metadata, written atomically.

safetensors metadata is `dict[str, str]`; we store non-string values as JSON and decode them on read
for the keys listed in `json_keys`.
"""

from __future__ import annotations

import json
import os
import re
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
        try:
            save_file(clean, str(tmp), metadata=_meta_str(metadata))
        except SafetensorError as e:  # the Rust writer reports an I/O error as text: "... (os error 28)"
            code = re.search(r"\(os error (\d+)\)", str(e))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from e  # a full disk: see atomic_path
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
        raise _unreadable(path, e) from None


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor and the string metadata; a corrupt file is a clear VjepaError."""
    path = Path(path)
    _check_exists(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(path, e) from None
    return tensors, meta


def _unreadable(path: Path, e: BaseException) -> VjepaError:
    """The error for a file safetensors refused, saying "truncated" when the sizes show it: safetensors' own
    words ("incomplete metadata, file not fully covered") do not tell a user that the copy stopped short."""
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else None
            header = json.loads(f.read(n)) if n is not None and 8 + n <= size else None
    except (OSError, ValueError, MemoryError):  # ValueError: not JSON, or not UTF-8
        return VjepaError(f"{path} is not a readable safetensors file: {reason}")
    if n is None or 8 + n > size:
        return VjepaError(f"{path} is not a readable safetensors file: truncated or not safetensors at all "
                          f"({size} bytes, less than its header claims)", hint="copy or download the file again")
    entries = header.values() if isinstance(header, dict) else ()
    ends = [v.get("data_offsets") for v in entries if isinstance(v, dict)]
    need = 8 + n + max((x[1] for x in ends if isinstance(x, list) and len(x) == 2 and isinstance(x[1], int)),
                       default=0)
    if need > size:
        return VjepaError(f"{path} is not a readable safetensors file: it is truncated (its tensors need {need} "
                          f"bytes, the file has {size})", hint="copy or download the file again")
    return VjepaError(f"{path} is not a readable safetensors file: {reason}")


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
