"""Loading and saving V-JEPA models: `load_model`, `save_model_file`, strict weight loading, `run_convert`.

Weights are read by `vjepa_cli.io.convert` (our model files, official V-JEPA / V-JEPA 2 checkpoints,
`transformers` V-JEPA 2) into official-named state dicts; this module builds the modules and loads them
strictly: every missing, unexpected or mis-shaped tensor is reported, never silently skipped (the official
loaders use `strict=False`). A V-JEPA 2-AC checkpoint's action-conditioned predictor is built as an
`ACPredictor` (architecture read from the shapes, or from our file's `ac_config`) and returned as
`LoadedModel.ac_predictor`; `.predictor` keeps its contract (the JEPA mask predictor, or None).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vjepa_cli import __version__
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io import convert as cv
from vjepa_cli.io.tensors import save_tensors
from vjepa_cli.runtime import resolve_device, torch_dtype

log = logging.getLogger(__name__)
MAX_TABLE_ROWS = 20


@dataclass
class LoadedModel:
    """What `load_model` returns: modules in eval mode, their architecture, and the file's metadata."""

    encoder: nn.Module
    predictor: nn.Module | None  # the JEPA (mask-token) predictor, or None
    config: ModelConfig
    metadata: dict = field(default_factory=dict)
    ac_predictor: nn.Module | None = None  # a V-JEPA 2-AC `ACPredictor`, when the file holds one




def build_models(cfg: ModelConfig, with_predictor: bool = True) -> tuple[nn.Module, nn.Module | None]:
    """Fresh (randomly initialised) encoder and, if asked, predictor for `cfg`."""
    from vjepa_cli.models import build_encoder, build_predictor

    return build_encoder(cfg), (build_predictor(cfg) if with_predictor else None)


def build_empty(cfg: ModelConfig, with_predictor: bool = True) -> tuple[nn.Module, nn.Module | None, bool]:
    """Modules without allocated weights (on the meta device) when the constructors allow it, for loading with
    `assign=True`: no memory or time spent on a random init. Falls back to a normal CPU build (flag False)."""
    try:
        with torch.device("meta"):
            enc, pred = build_models(cfg, with_predictor)
        return enc, pred, True
    except (NotImplementedError, RuntimeError):  # a constructor that needs real data
        return *build_models(cfg, with_predictor), False


def build_ac_empty(ac_cfg) -> tuple[nn.Module, bool]:
    """An `ACPredictor` for `ac_cfg` on the meta device (flag True) when possible, else a normal CPU build."""
    from vjepa_cli.models.ac_predictor import ACPredictor

    try:
        with torch.device("meta"):
            return ACPredictor(ac_cfg), True
    except (NotImplementedError, RuntimeError):
        return ACPredictor(ac_cfg), False


def expected_shapes(cfg: ModelConfig, with_predictor: bool = True) -> tuple[dict, dict | None]:
    """{name: shape} of the encoder (and predictor) state dicts for `cfg` (without allocating when possible)."""
    enc, pred, _ = build_empty(cfg, with_predictor)
    shapes = [None if m is None else {k: tuple(v.shape) for k, v in m.state_dict().items()} for m in (enc, pred)]
    return shapes[0], shapes[1]


def mismatch_table(expected: dict, found: dict) -> tuple[str, int]:
    """A `key | expected shape | found shape` table of the differing keys, and how many keys differ."""
    rows = []
    for k in sorted(set(expected) | set(found)):
        e = expected.get(k)
        f = tuple(found[k].shape) if k in found and hasattr(found[k], "shape") else found.get(k)
        if e != (None if f is None else tuple(f)):
            rows.append((k, "-" if e is None else str(tuple(e)), "-" if f is None else str(tuple(f))))
    if not rows:
        return "", 0
    shown = rows[:MAX_TABLE_ROWS]
    widths = [max(len(r[i]) for r in [("key", "expected shape", "found shape"), *shown]) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [("key", "expected shape", "found shape"), *shown]]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"... and {len(rows) - MAX_TABLE_ROWS} more")
    return "\n".join("  " + line for line in lines), len(rows)


def check_weights(what: str, expected: dict, found: dict, source: str) -> None:
    """Raise a VjepaError with a table when `found` does not have exactly the keys and shapes of `expected`."""
    table, n = mismatch_table(expected, found)
    if not n:
        return
    missing = len(set(expected) - set(found))
    unexpected = len(set(found) - set(expected))
    bad = n - missing - unexpected
    raise VjepaError(
        f"{source}: the {what} weights do not fit the architecture ({missing} missing, {unexpected} unexpected, "
        f"{bad} wrong shape); check that the file is a V-JEPA model and the architecture options "
        f"(--num-heads, --img-size, --num-frames) are right, or re-convert it with `vjepa convert`\n{table}"
    )


def check_dtypes(what: str, expected: dict, found: dict, source: str) -> None:
    """Raise a VjepaError when a tensor that should hold real numbers is stored as integers or booleans (or the
    reverse): `load_state_dict` would cast it silently, and the model would load and compute garbage."""
    bad = [k for k, v in found.items() if k in expected and v.is_floating_point() != expected[k].is_floating_point()]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise VjepaError(f"{source}: the {what} tensor '{bad[0]}' is stored as {found[bad[0]].dtype}, expected "
                         f"{expected[bad[0]].dtype}{more}",
                         hint="the file is damaged or not a V-JEPA model; re-convert it with `vjepa convert`")


def load_strict(module: nn.Module, sd: dict, what: str, source: str, assign: bool = False) -> None:
    """`module.load_state_dict(sd, strict=True, assign=assign)`, with our readable error on any difference."""
    own = module.state_dict()
    check_weights(what, {k: tuple(v.shape) for k, v in own.items()}, sd, source)
    check_dtypes(what, own, sd, source)
    module.load_state_dict(sd, strict=True, assign=assign)


def weights_and_config(path: str | Path, which: str | None = None, predictor: bool = True,
                       revision: str | None = None, **overrides) -> tuple[cv.Weights, ModelConfig, list[str]]:
    """Read any supported file and work out its architecture (stored for ours, inferred otherwise).

    An input size that had to be assumed (RoPE checkpoints do not store it) is added to `Weights.warnings`."""
    w = cv.read_weights(path, which=which, predictor=predictor, revision=revision)
    if w.config is not None:
        cfg, notes = w.config, []
        if any(v is not None for v in overrides.values()):
            raise VjepaError(f"{path} is a vjepa model file: its architecture is stored and cannot be overridden")
        if w.predictor_kind == "ac" and w.ac_config is None:
            raise VjepaError(f"{path}: the model file holds an action-conditioned predictor without its 'ac_config'",
                             hint="re-convert the original checkpoint with `vjepa convert`")
    elif w.predictor_kind == "ac":  # V-JEPA 2-AC: the encoder as usual, the predictor's own architecture
        ac_heads = overrides.pop("pred_num_heads", None)
        cfg, notes = cv.infer_config(w.encoder, None, hf_config=w.hf_config, **overrides)
        w.ac_config, ac_notes = cv.infer_ac_config(w.predictor, cfg, num_heads=ac_heads)
        notes += ac_notes
    else:
        cfg, notes = cv.infer_config(w.encoder, w.predictor, hf_config=w.hf_config, **overrides)
    if w.config is None and (warning := cv.rope_size_warning(
            cfg, hf_config=w.hf_config, img_size=overrides.get("img_size"), num_frames=overrides.get("num_frames"))):
        w.warnings.append(warning)
    return w, cfg, w.notes + notes


def load_model(path: str | Path, device: str | torch.device | None = None,
               dtype: str | torch.dtype | None = None, revision: str | None = None) -> LoadedModel:
    """Load a model file (ours, or anything `vjepa convert` reads) as modules in eval mode.

    Args:
        path: our `.safetensors`, an official `.pth.tar`/`.pt`, a transformers `model.safetensors` or its folder,
            or a Hugging Face repo id (`facebook/vjepa2-vitl-fpc64-256`, fetched through `huggingface_hub`).
        device: None (cpu), "auto" (cuda when available), or any torch device.
        dtype: None (float32), "fp32"/"bf16"/"fp16" or a torch.dtype.
        revision: branch, tag or commit of a Hub repo id.
    """
    dev, dt = resolve_device(device, default="cpu"), torch_dtype(dtype) or torch.float32
    w, cfg, notes = weights_and_config(path, revision=revision)
    for note in notes:
        log.info("%s: %s", path, note)
    for warning in w.warnings:
        log.warning("%s: %s", path, warning)
    kind = w.predictor_kind
    enc, pred, empty = build_empty(cfg, kind == "mask")
    load_strict(enc, w.encoder, "encoder", str(path), assign=empty)
    if pred is not None:
        load_strict(pred, w.predictor, "predictor", str(path), assign=empty)
    ac = None
    if kind == "ac":
        ac, ac_empty = build_ac_empty(w.ac_config)
        load_strict(ac, w.predictor, "action-conditioned predictor", str(path), assign=ac_empty)
    meta = w.metadata or {"source": str(path), "source_format": w.source_format, "encoder_key": w.encoder_key,
                          "notes": notes, "has_predictor": kind is not None, "predictor_kind": kind}
    enc, pred, ac = (None if m is None else m.to(device=dev, dtype=dt).eval() for m in (enc, pred, ac))
    return LoadedModel(enc, pred, cfg, meta, ac_predictor=ac)


def save_model_file(path: str | Path, encoder: nn.Module, predictor: nn.Module | None, cfg: ModelConfig,
                    provenance: dict, dtype: str | torch.dtype | None = None) -> Path:
    """Write our model file (atomically): `encoder.*` / `predictor.*` tensors, config and provenance metadata.
    `predictor` may be a JEPA predictor or an `ACPredictor` (its config is then stored as `ac_config`)."""
    from vjepa_cli.models.ac_predictor import ACPredictor

    sd = cv.pack(encoder.state_dict(), predictor.state_dict() if predictor is not None else None)
    sd = cv.cast_floats(sd, torch_dtype(dtype))
    ac_cfg = predictor.cfg if isinstance(predictor, ACPredictor) else None
    return save_tensors(path, sd, cv.model_metadata(cfg, provenance, predictor is not None, ac_config=ac_cfg))


@dataclass
class ConvertResult:
    """What `run_convert` did (rendered by `vjepa convert`)."""

    source: str  # the source path
    output: str  # the written file
    source_format: str  # vjepa / official-v1 / official-v2 / hf / state-dict
    encoder_key: str | None  # checkpoint entry the encoder came from
    arch: str  # closest preset name
    config: dict  # the resolved ModelConfig as a dict
    has_predictor: bool
    encoder_params: int
    predictor_params: int
    num_tensors: int
    dtype: str
    sha256: str  # of the source
    notes: list[str]
    predictor_kind: str | None = None  # "mask" (JEPA), "ac" (V-JEPA 2-AC) or None (no predictor)
    ac_config: dict | None = None  # the ACPredictorConfig as a dict, for an action-conditioned predictor
    warnings: list[str] = field(default_factory=list)  # assumptions to check (e.g. the input size of a RoPE model)


def run_convert(src: str | Path, dst: str | Path, *, which: str | None = None, predictor: bool = True,
                dtype: str = "fp32", overwrite: bool = False, num_heads: int | None = None,
                pred_num_heads: int | None = None, img_size: int | None = None, num_frames: int | None = None,
                revision: str | None = None, on_step: Callable[[str], None] | None = None) -> ConvertResult:
    """Convert `src` (any supported layout, or a Hugging Face repo id) to our model file `dst`, checking it
    against the architecture."""
    from vjepa_cli.io.hub import parse_repo_id, resolve_model_path, snapshot_commit

    hub_id = parse_repo_id(src)
    src, dst = resolve_model_path(src, revision), Path(dst)
    step = on_step or (lambda _s: None)
    cast_to = torch_dtype(dtype)
    if dst.is_dir():
        raise VjepaError(f"{dst} is a directory", hint="give a file name, e.g. -o model.safetensors")
    if dst.exists() and not overwrite:
        raise VjepaError(f"{dst} already exists", hint="pass --overwrite to replace it")
    if dst.resolve() == src.resolve():
        raise VjepaError("the output would overwrite the source", hint="choose another -o path")
    step("reading")
    w, cfg, notes = weights_and_config(src, which=which, predictor=predictor, num_heads=num_heads,
                                       pred_num_heads=pred_num_heads, img_size=img_size, num_frames=num_frames)
    step("checking")
    kind = w.predictor_kind
    exp_enc, exp_pred = expected_shapes(cfg, kind == "mask")
    check_weights("encoder", exp_enc, w.encoder, str(src))
    if exp_pred is not None:
        check_weights("predictor", exp_pred, w.predictor, str(src))
    if kind == "ac":
        ac_mod, _ = build_ac_empty(w.ac_config)
        check_weights("action-conditioned predictor", {k: tuple(v.shape) for k, v in ac_mod.state_dict().items()},
                      w.predictor, str(src))
    step("hashing")
    sha = cv.sha256_of(src)
    provenance = {
        "source": str(src.resolve()) if hub_id is None else f"hf://{hub_id[0]}@{snapshot_commit(src)}",
        "source_format": w.source_format, "encoder": w.encoder_key,
        "source_sha256": sha, "date": cv.now_iso(), "vjepa_version": __version__, "notes": notes + w.warnings,
    }
    if w.source_format == "vjepa":  # keep the original history
        provenance["previous"] = w.metadata.get("provenance")
    step("writing")
    sd = cv.cast_floats(cv.pack(w.encoder, w.predictor), cast_to)
    ac_cfg = w.ac_config if kind == "ac" else None
    save_tensors(dst, sd, cv.model_metadata(cfg, provenance, w.predictor is not None, ac_config=ac_cfg))
    from vjepa_cli.config._load import to_dict

    return ConvertResult(
        source=str(src), output=str(dst), source_format=w.source_format, encoder_key=w.encoder_key, arch=cfg.arch,
        config=to_dict(cfg), has_predictor=w.predictor is not None,
        encoder_params=sum(v.numel() for k, v in w.encoder.items() if k != "pos_embed"),
        predictor_params=sum(v.numel() for k, v in (w.predictor or {}).items() if "pos_embed" not in k),
        num_tensors=len(sd), dtype=str(dtype), sha256=sha, notes=notes, predictor_kind=kind,
        ac_config=None if ac_cfg is None else to_dict(ac_cfg), warnings=list(w.warnings),
    )
