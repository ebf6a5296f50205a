"""Weights in and out of pretraining: `vjepa export` (a training checkpoint -> a model file for inference), the
model file a finished run writes (`export_model`), and the weights a run may start from (`init_weights_from`).

By default the EMA target encoder is exported (the encoder V-JEPA evaluates, Bardes et al. 2024), optionally
with the predictor (needed by `vjepa predict` / `vjepa surprise`), in our safetensors format with the
architecture and provenance in the metadata, or as a `transformers` VJEPA2Model folder (RoPE models).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import stable_hash

log = logging.getLogger(__name__)

PREFIX = {"target": "target_encoder.", "context": "encoder."}


@dataclass
class ExportResult:
    source: str  # the checkpoint file read
    output: str  # the file or folder written
    step: int | None  # training step of the checkpoint
    which: str  # target or context
    with_predictor: bool
    format: str  # vjepa or hf
    dtype: str
    arch: str
    encoder_params: int
    onnx_max_abs_diff: float | None = None  # --format onnx: ONNX Runtime vs PyTorch (None: not checked)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the one a run directory's `latest` names (in it or in its `checkpoints/`)."""
    from vjepa_cli.io.checkpoint import find_latest, list_checkpoints

    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise VjepaError(f"checkpoint not found: {path}", hint="give a run directory or a step_*.safetensors file")
    for d in (path, path / "checkpoints"):
        latest = find_latest(d)
        if latest is not None:
            return latest
        found = list_checkpoints(d)
        if found:
            return found[-1]
    raise VjepaError(f"no checkpoint in {path}", hint="train with `vjepa pretrain RECIPE` first, or give a file")


def _model_config(meta: dict[str, Any], path: Path):
    """The architecture a checkpoint records (`model`, else `config.model`)."""
    from vjepa_cli.config._load import from_dict
    from vjepa_cli.config.model import ModelConfig

    model = meta.get("model")
    if not isinstance(model, dict) and isinstance(meta.get("config"), dict):
        model = meta["config"].get("model")
    if not isinstance(model, dict):
        raise VjepaError(f"{path} records no model architecture (metadata 'model')")
    return from_dict(ModelConfig, model, where=f"{path}: model")


def _seed(meta: dict[str, Any]) -> int | None:
    """The run's `seed` (rebuilds the random init it started from: `vjepa probe --random-init`)."""
    config = meta.get("config")
    seed = config.get("seed") if isinstance(config, dict) else None
    return seed if isinstance(seed, int) else None


def _recipe_hash(meta: dict[str, Any]) -> str | None:
    """The same hash `vjepa pretrain` records for its recipe (`config_hash` of the PretrainConfig)."""
    from vjepa_cli.config._load import config_hash, from_dict
    from vjepa_cli.config.train import PretrainConfig

    try:
        return config_hash(from_dict(PretrainConfig, meta["config"]))
    except Exception:  # an older or foreign config: hash the raw record instead
        return stable_hash(meta["config"], 12) if meta.get("config") is not None else None


def _strict_load(module: torch.nn.Module, sd: dict, what: str, path: Path) -> None:
    from vjepa_cli.models.load import load_strict

    if not sd:
        raise VjepaError(f"{path} holds no {what} weights")
    load_strict(module, sd, what, str(path))


def run_export(checkpoint: str | Path, output: str | Path, which: str = "target", with_predictor: bool = False,
               dtype: str = "fp32", fmt: str = "vjepa", overwrite: bool = False, frames: int | None = None,
               size: int | None = None) -> ExportResult:
    """Export the `which` encoder (target = EMA, context = online) of a checkpoint or run directory.
    `fmt="onnx"` also takes a model file, and `frames`/`size` set its input clip (default: the model's)."""
    from vjepa_cli import __version__
    from vjepa_cli.io.checkpoint import load_checkpoint
    from vjepa_cli.io.convert import cast_floats, now_iso, write_hf_dir
    from vjepa_cli.models import build_encoder, build_predictor
    from vjepa_cli.models.load import save_model_file

    if which not in PREFIX:
        raise VjepaError(f"unknown --which '{which}'", hint="use target (EMA, default) or context")
    if fmt not in ("vjepa", "hf", "onnx"):
        raise VjepaError(f"unknown --format '{fmt}'", hint="use vjepa (default), hf or onnx")
    if dtype not in ("fp32", "bf16", "fp16"):
        raise VjepaError(f"unknown --dtype '{dtype}'", hint="use fp32, bf16 or fp16")
    output = Path(output)
    if output.exists() and not overwrite:
        raise VjepaError(f"{output} already exists", hint="pass --overwrite to replace it")
    if fmt == "onnx":
        return export_onnx(checkpoint, output, which=which, frames=frames, size=size)
    src = resolve_checkpoint(checkpoint)
    tensors, meta = load_checkpoint(src)
    cfg = _model_config(meta, src)
    if fmt == "hf" and cfg.pos_embed != "rope":
        raise VjepaError("--format hf needs a RoPE (V-JEPA 2) model; this one uses sin-cos positions",
                         hint="export it in our format (the default) instead")
    split = {name: {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}
             for name, p in {**PREFIX, "predictor": "predictor."}.items()}
    enc = build_encoder(cfg)
    _strict_load(enc, split[which], f"{which} encoder", src)
    pred = None
    if with_predictor:
        pred = build_predictor(cfg)
        _strict_load(pred, split["predictor"], "predictor", src)
    step = meta.get("step")
    provenance = {
        "source": str(src.resolve()), "source_format": "vjepa-train-checkpoint", "encoder": which,
        "step": step, "recipe_hash": _recipe_hash(meta), "seed": _seed(meta),
        "date": now_iso(), "vjepa_version": __version__,
    }
    if fmt == "hf":
        torch_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        write_hf_dir(output, cast_floats(enc.state_dict(), torch_dtype),
                     cast_floats(pred.state_dict(), torch_dtype) if pred is not None else None, cfg)
    else:
        save_model_file(output, enc, pred, cfg, provenance, dtype=dtype)
    return ExportResult(str(src), str(output), step, which, pred is not None, fmt, dtype, cfg.arch,
                        sum(p.numel() for p in enc.parameters()))


def _encoder_for_onnx(checkpoint: str | Path, which: str) -> tuple[Path, nn.Module, Any, int | None]:
    """(source, encoder, config, step) from a training run/checkpoint, else from any model file."""
    from vjepa_cli.io.checkpoint import load_checkpoint
    from vjepa_cli.io.tensors import read_metadata
    from vjepa_cli.models import build_encoder

    path = Path(checkpoint)
    if path.is_dir() or (path.suffix == ".safetensors" and path.is_file()
                         and read_metadata(path).get("format") == "vjepa-train-checkpoint"):
        src = resolve_checkpoint(path)
        tensors, meta = load_checkpoint(src)
        cfg = _model_config(meta, src)
        enc = build_encoder(cfg)
        _strict_load(enc, {k[len(PREFIX[which]):]: v for k, v in tensors.items() if k.startswith(PREFIX[which])},
                     f"{which} encoder", src)
        return src, enc, cfg, meta.get("step")
    import vjepa_cli

    if which != "target":
        raise VjepaError("--which context applies to training checkpoints; a model file holds one encoder")
    model = vjepa_cli.load_model(path)
    return path, model.encoder, model.config, None


def export_onnx(checkpoint: str | Path, output: str | Path, which: str = "target", frames: int | None = None,
                size: int | None = None) -> ExportResult:
    """The encoder as an ONNX file (input `video` [B, 3, T, H, W] normalised pixels, output `features`
    [B, N, D]; B dynamic), checked against PyTorch with ONNX Runtime when it is installed (max-abs in the log)."""
    from vjepa_cli.io.onnx import onnx_max_abs_diff, write_onnx

    src, enc, cfg, step = _encoder_for_onnx(checkpoint, which)
    frames, size = frames or cfg.num_frames, size or cfg.img_size
    if size % cfg.patch_size or (frames % cfg.tubelet_size and frames != 1):
        raise VjepaError(f"--frames {frames} / --size {size} do not fit the model's tubelet {cfg.tubelet_size} "
                         f"and patch {cfg.patch_size}")
    enc = enc.float().eval()
    g = torch.Generator().manual_seed(0)
    example = torch.randn(1, cfg.in_chans, frames, size, size, generator=g)
    write_onnx(enc, example, output)
    diff = onnx_max_abs_diff(output, enc, torch.randn(2, cfg.in_chans, frames, size, size, generator=g))
    if diff is not None:
        log.info("ONNX Runtime vs PyTorch on a batch of 2: max abs difference %.2e", diff)
        if diff > 1e-3:
            log.warning("ONNX Runtime output differs from PyTorch by %.2e (max abs)", diff)
    return ExportResult(str(src), str(output), step, which, False, "onnx", "fp32", cfg.arch,
                        sum(p.numel() for p in enc.parameters()), onnx_max_abs_diff=diff)


def export_model(path: Path, cfg: PretrainConfig, target: nn.Module, predictor: nn.Module, step: int,
                 name: str) -> Path:
    """Write the model file of a finished pretraining run: the EMA target encoder (what evaluation uses) and
    the predictor."""
    from vjepa_cli.config._load import config_hash
    from vjepa_cli.io.convert import model_metadata, now_iso, pack
    from vjepa_cli.io.tensors import save_tensors

    prov = {"source": "vjepa pretrain", "run": name, "step": step, "encoder": "target_encoder (EMA)",
            "recipe_hash": config_hash(cfg), "seed": cfg.seed, "created": now_iso()}
    sd = pack(target.state_dict(), predictor.state_dict())
    return save_tensors(path, sd, model_metadata(cfg.model, prov, has_predictor=True))


def init_weights_from(path: str, encoder: nn.Module, predictor: nn.Module) -> dict | None:
    """Start from existing weights (e.g. V-JEPA 2's cooldown from a pretrained run), strictly.

    From one of our training checkpoints the online encoder, predictor and target encoder all carry over
    (the target's state dict is returned for the caller to load); from a model file or an official /
    transformers checkpoint, the encoder (the target encoder where there is a choice) and the predictor.
    """
    from vjepa_cli.io.checkpoint import CKPT_FORMAT, load_checkpoint
    from vjepa_cli.io.convert import read_weights, sniff
    from vjepa_cli.io.tensors import read_metadata

    target = None
    if sniff(Path(path)) == "safetensors" and read_metadata(path).get("format") == CKPT_FORMAT:
        tensors, _ = load_checkpoint(path)
        enc = {k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")}
        target = {k.removeprefix("target_encoder."): v for k, v in tensors.items() if k.startswith("target_encoder.")}
        pred = {k.removeprefix("predictor."): v for k, v in tensors.items() if k.startswith("predictor.")} or None
    else:
        w = read_weights(path)
        enc, pred = w.encoder, w.predictor
        if w.predictor_kind == "ac":  # an action-conditioned predictor is not a mask predictor: encoder only
            log.warning("init_from %s holds a V-JEPA 2-AC predictor; only its encoder is used", path)
            pred = None
    try:
        encoder.load_state_dict(enc, strict=True)
        if pred is not None:
            predictor.load_state_dict(pred, strict=True)
    except RuntimeError as e:
        raise VjepaError(f"init_from {path}: the weights do not fit the recipe's model: "
                         f"{str(e).strip().splitlines()[0]}") from None
    if pred is None:
        log.warning("init_from %s has no predictor; the predictor starts from scratch", path)
    return target
