"""Reading V-JEPA weights in every layout we support, and writing ours and the `transformers` one.

Pure dict/tensor/path code: no modules are built here (that is `vjepa_cli.models.load`).

Layouts (names follow the official code, V-JEPA: Bardes et al. 2024, V-JEPA 2: Assran et al. 2025):
- official training checkpoints (`.pth.tar` V-JEPA 1, `.pt` V-JEPA 2 / 2.1): a pickled dict with `encoder`,
  `target_encoder`, `predictor` state dicts whose keys carry `module.` and/or `backbone.` prefixes; the released
  V-JEPA 2.1 ViT-B/L files hold their encoder under `ema_encoder` instead (Mur-Labadia et al., 2026);
- `transformers` V-JEPA 2 (`model.safetensors` + `config.json`): separate q/k/v, stacked mask tokens;
- ours: safetensors with `encoder.<official name>` / `predictor.<official name>` and the architecture
  (`ModelConfig`) and provenance as JSON metadata; a V-JEPA 2-AC (action-conditioned) predictor is marked by
  `predictor_kind: "ac"` and its `ACPredictorConfig` in `ac_config`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vjepa_cli.config._load import from_dict
from vjepa_cli.config.model import ACPredictorConfig, ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.hf_layout import hf_to_ours, to_hf_state_dict, write_hf_dir
from vjepa_cli.io.infer_arch import infer_ac_config, infer_config, is_ac_predictor, rope_size_warning
from vjepa_cli.io.infer_v21 import is_v21
from vjepa_cli.io.model_file import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    cast_floats,
    model_metadata,
    now_iso,
    pack,
    sha256_of,
    unpack,
)
from vjepa_cli.io.tensors import load_tensors, meta_json, read_metadata
from vjepa_cli.runtime import DTYPES

log = logging.getLogger(__name__)

_PREFIXES = ("module.", "backbone.", "_orig_mod.")
OFFICIAL_FORMATS = ("official-v1", "official-v2", "official-v2.1")
_TARGET_KEYS = ("target_encoder", "ema_encoder")  # the EMA encoder: training checkpoints / released 2.1 B and L

StateDict = dict[str, torch.Tensor]


@dataclass
class Weights:
    """Encoder (and predictor) state dicts with official names, plus what is known about where they came from."""

    encoder: StateDict  # official names: patch_embed.proj.weight, blocks.0.attn.qkv.weight, ...
    predictor: StateDict | None  # official names, or None when the source has none (or it was dropped)
    source_format: str  # "vjepa", "official-v1", "official-v2", "official-v2.1", "hf", "state-dict"
    encoder_key: str | None = None  # checkpoint entry the encoder came from ("target_encoder" / "ema_encoder" / ...)
    config: ModelConfig | None = None  # stored architecture (our files only)
    hf_config: dict | None = None  # transformers config.json, when there is one
    metadata: dict = field(default_factory=dict)  # decoded metadata of our files
    notes: list[str] = field(default_factory=list)  # assumptions made while reading
    ac_config: ACPredictorConfig | None = None  # stored 2-AC predictor architecture (our files only)
    warnings: list[str] = field(default_factory=list)  # assumptions the user should check (the CLI shows them)

    @property
    def predictor_kind(self) -> str | None:
        """"ac" for a V-JEPA 2-AC (action-conditioned) predictor, "mask" for a JEPA one, None without one."""
        if self.predictor is None:
            return None
        return "ac" if self.ac_config is not None or is_ac_predictor(self.predictor) else "mask"


# ---------------------------------------------------------------- reading
def sniff(path: Path) -> str:
    """What `path` holds by content: "dir", "zip" (torch.save), "pickle" (legacy torch.save), "safetensors", "unknown"."""
    if not path.exists():
        raise VjepaError(f"file not found: {path}")
    if path.is_dir():
        return "dir"
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    # safetensors first: its 8-byte header length starts with 0x80 (pickle's first byte) for 1 header size in 256
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def read_weights(path: str | Path, which: str | None = None, predictor: bool = True) -> Weights:
    """Read weights from our files, official checkpoints, or transformers files/directories (by content).

    `which` picks the encoder of a training checkpoint: "target" (EMA: `target_encoder`, or `ema_encoder` in the
    released V-JEPA 2.1 B/L files; the default) or "context" (`encoder`).
    `predictor=False` drops the predictor. An action-conditioned (V-JEPA 2-AC) predictor is kept as it is;
    `Weights.predictor_kind` tells it apart.
    """
    path = Path(path)
    if which not in (None, "target", "context"):
        raise VjepaError(f"--which must be 'target' or 'context', got '{which}'")
    kind = sniff(path)
    if kind == "dir":
        w = _read_hf_dir(path)
    elif kind in ("zip", "pickle"):
        w = _from_pickled(_torch_load(path, mmap=kind == "zip"), path, which)
    elif kind == "safetensors":
        w = _read_safetensors(path)
    else:
        raise VjepaError(f"{path} is not a model file (neither safetensors nor a torch checkpoint)",
                         hint="expected a vjepa .safetensors, an official .pth.tar/.pt, or a transformers model")
    if which is not None and w.source_format not in OFFICIAL_FORMATS:
        raise VjepaError(f"--which applies to official training checkpoints only; {path} is '{w.source_format}'")
    if not predictor:
        w.predictor, w.ac_config = None, None
    return w


def _numpy_safe_globals() -> list:
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    dtypes = [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    return [core.multiarray.scalar, np.dtype, *dtypes]  # numpy scalars (loss, lr) in training checkpoints


def _torch_load(path: Path, mmap: bool) -> Any:
    import pickle

    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise VjepaError(f"{path} needs unsafe pickle loading (it holds Python objects beyond tensors)",
                             hint="vjepa only loads with weights_only=True; if you trust the file, re-save its state "
                                  "dicts with torch.save") from None
        raise VjepaError(f"{path} is truncated or corrupt: {str(e).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise VjepaError(f"{path} is truncated or corrupt: {msg}") from None


def strip_prefixes(sd: dict) -> StateDict:
    """Drop the DDP/wrapper prefixes (`module.`, `backbone.`, `_orig_mod.`) from every key."""
    out = {}
    for k, v in sd.items():
        while k.startswith(_PREFIXES):
            k = k.split(".", 1)[1]
        out[k] = v
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _from_pickled(obj: Any, path: Path, which: str | None) -> Weights:
    """A torch-loaded object -> Weights (official checkpoint, or a bare state dict of a known layout)."""
    if isinstance(obj, dict) and any(k in obj for k in ("encoder", *_TARGET_KEYS)):
        return official_to_ours(obj, which, path)
    if isinstance(obj, dict) and ("classifier" in obj or "classifiers" in obj):
        raise VjepaError(f"{path} is an attentive-probe checkpoint, not a V-JEPA model")
    if _is_state_dict(obj):
        return _from_flat(strip_prefixes(obj), path, "state-dict")
    keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
    raise VjepaError(f"{path} is not a V-JEPA checkpoint (it holds: {keys})",
                     hint="expected a dict with 'encoder'/'target_encoder' state dicts")


def official_to_ours(ckpt: dict, which: str | None = None, path: Path | str = "checkpoint") -> Weights:
    """An official training checkpoint dict -> Weights (prefixes stripped; names are already ours)."""
    notes = []
    if which == "context":
        key = "encoder"
    else:  # the EMA encoder, under either name
        key = next((k for k in _TARGET_KEYS if isinstance(ckpt.get(k), dict)), "target_encoder")
    if key not in ckpt or not isinstance(ckpt[key], dict):
        if which is not None or "encoder" not in ckpt:
            raise VjepaError(f"{path} has no '{key}' entry (entries: {', '.join(map(str, ckpt))})")
        key = "encoder"
        notes.append("no 'target_encoder' in the checkpoint: took 'encoder'")
    enc = strip_prefixes(ckpt[key])
    pred = strip_prefixes(ckpt["predictor"]) if isinstance(ckpt.get("predictor"), dict) else None
    fmt = "official-v1" if "pos_embed" in enc else "official-v2.1" if is_v21(enc) else "official-v2"
    return Weights(enc, pred or None, fmt, encoder_key=key, notes=notes)


def _from_flat(sd: StateDict, path: Path, fmt: str, hf_config: dict | None = None) -> Weights:
    """A flat tensor dict of one of the known layouts -> Weights."""
    if any(k.startswith(("encoder.embeddings.", "vjepa2.encoder.")) for k in sd):
        enc, pred, notes = hf_to_ours(sd)
        return Weights(enc, pred, "hf", hf_config=hf_config, notes=notes)
    if any(k.startswith("encoder.") for k in sd):
        enc, pred = unpack(sd)
        return Weights(enc, pred, fmt)
    if "patch_embed.proj.weight" in sd:
        return Weights(sd, None, fmt, notes=["a bare encoder state dict (no predictor)"])
    if "features" in sd:
        raise VjepaError(f"{path} is a features file (from `vjepa extract`), not a model file")
    keys = ", ".join(list(sd)[:6])
    raise VjepaError(f"{path} does not hold V-JEPA weights (keys: {keys}, ...)",
                     hint="expected a vjepa model file, an official checkpoint or a transformers V-JEPA 2 model")


def _read_safetensors(path: Path) -> Weights:
    meta = read_metadata(path)
    fmt = meta.get("format", "")
    if fmt.startswith("vjepa-") and fmt != MODEL_FORMAT:  # another of our file kinds (features, ...)
        raise VjepaError(f"{path} is a '{fmt}' file, not a model file")
    tensors, meta = load_tensors(path)
    if fmt != MODEL_FORMAT:
        cfg_json = path.with_name("config.json")
        hf_config = _read_hf_config(cfg_json) if cfg_json.is_file() else None
        return _from_flat(tensors, path, "state-dict", hf_config)
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise VjepaError(f"{path} has model-file format version {meta.get('format_version')}; this vjepa reads "
                         f"version {MODEL_FORMAT_VERSION}", hint="upgrade vjepa")
    cfg_dict = meta_json(meta, "config")
    if not isinstance(cfg_dict, dict):
        raise VjepaError(f"{path}: the model file has no architecture config in its metadata")
    cfg = from_dict(ModelConfig, cfg_dict, where=f"{path} (metadata 'config')")
    enc, pred = unpack(tensors)
    decoded = {k: meta_json(meta, k) for k in ("config", "provenance")}
    decoded.update(format=fmt, format_version=meta["format_version"], has_predictor=pred is not None)
    ac_cfg = None
    if meta.get("predictor_kind", "mask") == "ac":
        ac_dict = meta_json(meta, "ac_config")
        if not isinstance(ac_dict, dict):
            raise VjepaError(f"{path}: the model file marks an action-conditioned predictor but has no 'ac_config'")
        ac_cfg = from_dict(ACPredictorConfig, ac_dict, where=f"{path} (metadata 'ac_config')")
        decoded.update(predictor_kind="ac", ac_config=ac_dict)
    return Weights(enc, pred, "vjepa", config=cfg, metadata=decoded, ac_config=ac_cfg)


def _read_hf_config(path: Path) -> dict:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VjepaError(f"cannot read {path}: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != "vjepa2":
        got = cfg.get("model_type") if isinstance(cfg, dict) else None
        raise VjepaError(f"{path} is a transformers config for model_type '{got}', not 'vjepa2'")
    return cfg


def _read_hf_dir(path: Path) -> Weights:
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if not (path / "config.json").is_file() or not (single.is_file() or index.is_file()):
        raise VjepaError(f"{path} is a directory without config.json + model.safetensors",
                         hint="give a model file, or a transformers V-JEPA 2 directory (save_pretrained)")
    hf_config = _read_hf_config(path / "config.json")
    if single.is_file():
        sd, _ = load_tensors(single)
    else:
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, json.JSONDecodeError, KeyError, AttributeError) as e:
            raise VjepaError(f"cannot read {index}: {e}") from None
        sd = {}
        for shard in shards:
            sd.update(load_tensors(path / shard)[0])
    w = _from_flat(sd, path, "hf", hf_config)
    if w.source_format != "hf":
        raise VjepaError(f"{path}: model.safetensors does not hold transformers V-JEPA 2 weights")
    return w


__all__ = [
    "DTYPES", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "Weights", "cast_floats", "hf_to_ours", "infer_ac_config",
    "infer_config", "rope_size_warning",
    "model_metadata", "now_iso", "official_to_ours", "pack", "read_weights", "sha256_of", "sniff",
    "strip_prefixes", "to_hf_state_dict", "unpack", "write_hf_dir",
]
