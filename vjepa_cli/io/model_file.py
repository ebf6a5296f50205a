"""Our model file's layout: one flat safetensors dict (`encoder.` / `predictor.` prefixes on the official
names) with the architecture and provenance as JSON metadata; and the small helpers that write it."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.model import ACPredictorConfig, ModelConfig

StateDict = dict[str, torch.Tensor]
MODEL_FORMAT = "vjepa-model"
MODEL_FORMAT_VERSION = "1"


def pack(encoder_sd: StateDict, predictor_sd: StateDict | None) -> StateDict:
    """(encoder, predictor) -> one flat dict with `encoder.` / `predictor.` prefixes."""
    out = {f"encoder.{k}": v for k, v in encoder_sd.items()}
    out.update({f"predictor.{k}": v for k, v in (predictor_sd or {}).items()})
    return out


def unpack(sd: StateDict) -> tuple[StateDict, StateDict | None]:
    """Inverse of `pack`; keys with neither prefix stay in the encoder dict (so strict loading lists them)."""
    enc = {k.removeprefix("encoder."): v for k, v in sd.items() if not k.startswith("predictor.")}
    pred = {k.removeprefix("predictor."): v for k, v in sd.items() if k.startswith("predictor.")}
    return enc, (pred or None)


def cast_floats(sd: StateDict, dtype: torch.dtype | None) -> StateDict:
    if dtype is None:
        return dict(sd)
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}


def model_metadata(cfg: ModelConfig, provenance: dict, has_predictor: bool,
                   ac_config: ACPredictorConfig | None = None) -> dict[str, str]:
    """Our model file's metadata; `ac_config` marks the predictor as action-conditioned (V-JEPA 2-AC)."""
    meta = {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
        "config": json.dumps(to_dict(cfg.resolve()), sort_keys=True),  # 2.1 options only when set (see to_dict)
        "provenance": json.dumps(provenance, sort_keys=True, default=str),
        "has_predictor": "true" if has_predictor else "false",
    }
    if has_predictor and ac_config is not None:
        meta.update(predictor_kind="ac", ac_config=json.dumps(to_dict(ac_config), sort_keys=True))
    return meta


def sha256_of(path: str | Path) -> str:
    """sha256 of a file, or of a directory's weight and config files in name order."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.suffix in (".safetensors", ".json") and p.is_file()
    )
    h = hashlib.sha256()
    for p in files:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
