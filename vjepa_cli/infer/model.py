"""Pieces shared by the frozen-model commands: finding the model, the device and dtype, moving uint8
windows to the device (`vjepa_cli.data.transforms.normalize_clips` then normalises them), and a fingerprint
of the model for resumable outputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import torch_dtype

NO_MODEL_HINT = (
    "pass --model PATH or set $VJEPA_MODEL; get a model with `vjepa convert <released V-JEPA weights> "
    "-o model.safetensors`, or train one with `vjepa pretrain recipes/tiny-cpu.yaml` then `vjepa export RUN_DIR`"
)


def require_model_path(path: str | Path | None) -> Path:
    """The model path from the argument or $VJEPA_MODEL (a Hugging Face repo id becomes its cached snapshot);
    a VjepaError saying how to get one otherwise."""
    if path is None or str(path) == "":
        env = os.environ.get("VJEPA_MODEL")
        if not env:
            raise VjepaError("no model given", hint=NO_MODEL_HINT)
        path = env
    from vjepa_cli.io.hub import parse_repo_id, resolve_model_path

    if parse_repo_id(path) is not None:  # a Hugging Face repo id: its local snapshot (downloaded when missing)
        return resolve_model_path(path)
    path = Path(path)
    if not path.exists():
        raise VjepaError(f"model not found: {path}", hint=NO_MODEL_HINT)
    return path


def load_eval_model(path: str | Path | None, device: torch.device, dtype: str = "fp32", need_predictor: bool = False):
    """Load a model file for inference (eval mode, on `device`, in `dtype`)."""
    import vjepa_cli

    path = require_model_path(path)
    model = vjepa_cli.load_model(path, device=device, dtype=torch_dtype(dtype))
    if need_predictor and getattr(model, "predictor", None) is None:
        raise VjepaError(
            f"{path} holds no predictor",
            hint="export one with `vjepa export RUN_DIR` (the predictor is kept unless --no-predictor), or convert a checkpoint that has one",
        )
    return model


def to_device_uint8(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """Move uint8 frames to `device` (pinned and asynchronous on CUDA: 4x fewer bytes than float)."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def model_fingerprint(path: str | Path, config: Any = None, metadata: dict | None = None) -> str:
    """A short id of a model file: its config, its metadata and the bytes at both ends of the file(s)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    h.update(json.dumps(_plain(config), sort_keys=True, default=str).encode())
    h.update(json.dumps(metadata or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _plain(cfg: Any) -> Any:
    if cfg is None:
        return None
    from vjepa_cli.config._load import to_dict

    try:
        return to_dict(cfg)
    except Exception:  # not a dataclass: fall back to its repr
        return repr(cfg)


def model_record(model: Any, path: Path) -> dict[str, Any]:
    """What an output file records about the model that made it."""
    return {
        "model": str(path),
        "model_id": model_fingerprint(path, getattr(model, "config", None), getattr(model, "metadata", None)),
        "model_config": _plain(getattr(model, "config", None)),
    }


def check_window(model: Any, wcfg: Any) -> None:
    """Fail early, in one line, when windows cannot be encoded by this model (crop or clip length)."""
    cfg = model.config
    _, size = wcfg.crop_for(int(cfg.img_size))
    if size % cfg.patch_size:
        raise VjepaError(f"crop size {size} is not a multiple of the model's patch size {cfg.patch_size}",
                         hint=f"use --size {max(cfg.patch_size, size // cfg.patch_size * cfg.patch_size)}")
    if wcfg.frames % cfg.tubelet_size and wcfg.frames != 1:
        raise VjepaError(f"--frames {wcfg.frames} is not a multiple of the model's tubelet size {cfg.tubelet_size}")
