"""Architecture (`ModelConfig`) inferred from the shapes of official-named state dicts.

Widths, depths, patch/tubelet sizes, MLP ratio, predictor sizes and the number of mask tokens are read
from shapes. Head counts are not visible in shapes: they come from a transformers `config.json` when there
is one, else from the official table for the width. For sin-cos (V-JEPA 1) models the token grid the
`pos_embed` table was built for is read back from the table itself (its first column per axis is sin(pos)).
`infer_ac_config` does the same for a V-JEPA 2-AC (action-conditioned) predictor (Assran et al. 2025); V-JEPA 2.1
models are recognised from their keys (`infer_v21`). A RoPE checkpoint does not store its input size:
`rope_size_warning` says which one was assumed and how to override it.
"""

from __future__ import annotations

import math
import re

import torch

from vjepa_cli.config.model import ARCHS, ACPredictorConfig, ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.infer_v21 import (
    V21_SIZE,
    is_v21,
    predictor_embed_out,
    v21_encoder_fields,
    v21_predictor_fields,
)

# Official head counts by width; the released V-JEPA 2 ViT-g (RoPE) has 22 heads, V-JEPA 1's ViT-g 16.
HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}
HEADS_BY_WIDTH_ROPE = {**HEADS_BY_WIDTH, 1408: 22, 1664: 26}  # 1664: the V-JEPA 2.1 ViT-G
V2_PRED_HEADS = 12  # V-JEPA 2 predictors use 12 heads whatever the encoder
AC_KEYS = ("action_encoder.", "state_encoder.", "extrinsics_encoder.")  # what marks a 2-AC predictor
ROPE_DEFAULTS = (256, 64)  # V-JEPA 2 hub defaults: img_size, num_frames (RoPE itself works at any size)


def count_blocks(sd: dict, prefix: str) -> int:
    """1 + the largest i among keys `{prefix}.{i}.*` (0 when there are none)."""
    pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    idx = [int(m.group(1)) for k in sd if (m := pat.match(k))]
    return max(idx) + 1 if idx else 0


def _run_length(col: torch.Tensor, tol: float) -> int:
    """How many leading entries of `col` equal the first one."""
    diff = (col - col[0]).abs() > tol
    return int(diff.float().argmax()) if bool(diff.any()) else col.numel()


def sincos_grid(pos_embed: torch.Tensor) -> tuple[int, int, int, bool] | None:
    """The (T', H', W', uniform_power) a 3D sin-cos table `[1, N, D]` was built for, or None if it is not one."""
    p = pos_embed.detach().reshape(-1, pos_embed.shape[-1]).to("cpu", torch.float64)  # (N, D)
    n, d = p.shape
    tol = 2e-3 if pos_embed.dtype in (torch.float32, torch.float64) else 3e-2
    for uniform in (True, False):
        dt, dh = (int(math.ceil(d / 6) * 2),) * 2 if uniform else (d // 2, d // 4)
        if dt < 2 or dh < 2 or dt + dh >= d:
            continue
        col_t, col_h, col_w = p[:, 0], p[:, dt], p[:, dt + dh]  # sin(t), sin(h), sin(w)
        hw = _run_length(col_t, tol)
        w = _run_length(col_h[:hw], tol)
        if n % hw or hw % w:
            continue
        idx = torch.arange(n, dtype=torch.float64)
        t, h, ww = idx // hw, (idx % hw) // w, idx % w
        err = max(float((col_t - t.sin()).abs().max()), float((col_h - h.sin()).abs().max()),
                  float((col_w - ww.sin()).abs().max()))
        if err < tol:
            return n // hw, hw // w, w, uniform
    return None


def _mlp_ratio(dim: int, hidden: int, preferred: float) -> float:
    """A ratio r with int(dim * r) == hidden (what the blocks compute), preferring a preset's exact value."""
    for r in (preferred, hidden / dim, math.nextafter(hidden / dim, math.inf)):
        if int(dim * r) == hidden:
            return r
    return hidden / dim


def _sincos_size(enc: dict, patch: int, tub: int, img_size: int | None, num_frames: int | None,
                 notes: list[str]) -> tuple[int, int, bool]:
    """img_size, num_frames, uniform_power of a sin-cos model, from its pos_embed and the overrides."""
    pos = enc["pos_embed"]
    n = pos.shape[-2]
    uniform = True
    if img_size is None or num_frames is None:
        grid = sincos_grid(pos)
        if grid is not None:
            t, h, w, uniform = grid
            if h != w and img_size is None:
                raise VjepaError(f"pos_embed was built for a non-square {h}x{w} token grid, which is not supported")
            img_size = img_size or h * patch
            num_frames = num_frames or t * tub
        elif img_size is not None:
            num_frames = max(1, n // (img_size // patch) ** 2) * tub
        else:  # not a clean sin-cos table: prefer 16 frames (V-JEPA 1's), then the largest square grid
            cands = [(t, g) for t in range(1, n + 1) if n % t == 0 for g in [math.isqrt(n // t)] if g * g * t == n]
            if not cands:
                raise VjepaError(f"cannot tell the input size from pos_embed ({n} tokens)",
                                 hint="pass --img-size and --num-frames")
            t, g = min(cands, key=lambda c: (abs(c[0] * tub - 16), -c[1]))
            img_size = img_size or g * patch
            num_frames = num_frames or t * tub
            notes.append(f"assumed {img_size}px, {num_frames} frames from pos_embed length {n}")
    tokens = max(1, num_frames // tub) * (img_size // patch) ** 2
    if tokens != n:
        raise VjepaError(f"pos_embed has {n} tokens but {num_frames} frames at {img_size}px give {tokens}",
                         hint="check --img-size / --num-frames")
    return img_size, num_frames, uniform


def infer_config(
    encoder: dict, predictor: dict | None = None, *, hf_config: dict | None = None,
    num_heads: int | None = None, pred_num_heads: int | None = None,
    img_size: int | None = None, num_frames: int | None = None,
) -> tuple[ModelConfig, list[str]]:
    """The `ModelConfig` matching these official-named state dicts, and notes on what was assumed."""
    notes: list[str] = []
    hf = hf_config or {}
    pw = encoder.get("patch_embed.proj.weight")
    if pw is None or pw.ndim not in (4, 5):
        raise VjepaError("the weights have no patch_embed.proj.weight of rank 4/5: not a V-JEPA encoder")
    dim, chans, patch = int(pw.shape[0]), int(pw.shape[1]), int(pw.shape[-1])
    tub = int(pw.shape[2]) if pw.ndim == 5 else 1
    depth = count_blocks(encoder, "blocks")
    fc1 = encoder.get("blocks.0.mlp.fc1.weight")
    hidden = int(fc1.shape[0]) if fc1 is not None else 4 * dim
    rope = "pos_embed" not in encoder
    v21 = v21_encoder_fields(encoder, depth, patch, notes) if is_v21(encoder) else {}
    if float(hf.get("layer_norm_eps", 1e-6)) != 1e-6 or hf.get("hidden_act", "gelu") != "gelu":
        raise VjepaError("config.json asks for layer_norm_eps/hidden_act other than 1e-6/gelu: not supported")
    if float(hf.get("pred_mlp_ratio", 4.0)) != 4.0:
        raise VjepaError("config.json asks for a predictor MLP ratio other than 4: not supported")

    table = HEADS_BY_WIDTH_ROPE if rope else HEADS_BY_WIDTH
    heads = num_heads or hf.get("num_attention_heads") or table.get(dim)
    if heads is None:
        raise VjepaError(f"cannot tell the number of attention heads of a width-{dim} encoder from its weights",
                         hint="pass --num-heads")
    if num_heads is None and "num_attention_heads" not in hf:
        notes.append(f"{heads} heads: the official count for width {dim}")

    if rope:
        default_size, default_frames = V21_SIZE if v21 else ROPE_DEFAULTS
        img_size = img_size or hf.get("crop_size") or default_size
        num_frames = num_frames or hf.get("frames_per_clip") or default_frames
        uniform = True
    else:
        img_size, num_frames, uniform = _sincos_size(encoder, patch, tub, img_size, num_frames, notes)

    exact = [n for n, (d, L, h, m) in ARCHS.items() if (d, L, h) == (dim, depth, heads) and int(d * m) == hidden]
    arch = exact[0] if exact else min(
        ARCHS, key=lambda n: (abs(ARCHS[n][0] - dim), abs(ARCHS[n][1] - depth), abs(ARCHS[n][2] - heads))
    )
    ratio = _mlp_ratio(dim, hidden, float(hf.get("mlp_ratio", ARCHS[arch][3])))

    pred = _predictor_fields(predictor, hf, dim, rope=rope, default_heads=V2_PRED_HEADS if rope else heads,
                             pred_num_heads=pred_num_heads, v21=v21)
    try:
        cfg = ModelConfig(
            arch=arch, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=ratio, in_chans=chans,
            patch_size=patch, tubelet_size=max(tub, 1) if pw.ndim == 5 else 2, num_frames=num_frames,
            img_size=img_size, pos_embed="rope" if rope else "sincos", uniform_power=uniform,
            qkv_bias="blocks.0.attn.qkv.bias" in encoder or bool(hf.get("qkv_bias", depth == 0)),
            **pred, **v21,
        ).resolve()
    except ValueError as e:
        raise VjepaError(f"the inferred architecture is invalid: {e}",
                         hint="pass --num-heads / --pred-num-heads / --img-size / --num-frames") from None
    return cfg, notes


def _predictor_fields(predictor: dict | None, hf: dict, dim: int, *, rope: bool, default_heads: int,
                      pred_num_heads: int | None, v21: dict) -> dict:
    """The predictor's ModelConfig fields from its weights (placeholders, V-JEPA defaults, without a predictor).
    For a V-JEPA 2.1 encoder (`v21` non-empty) the 2.1 predictor fields are read too."""
    heads = pred_num_heads or hf.get("pred_num_attention_heads") or default_heads
    if not predictor:
        pdim = hf.get("pred_hidden_size", 384)
        return dict(pred_embed_dim=pdim, pred_depth=hf.get("pred_num_hidden_layers", 12),
                    pred_num_heads=heads if pdim % heads == 0 else V2_PRED_HEADS,
                    pred_num_mask_tokens=hf.get("pred_num_mask_tokens", 8 if v21 else 10 if rope else 2))
    pe = predictor_embed_out(predictor)
    if pe is None:
        raise VjepaError("the predictor weights have no predictor_embed.weight")
    n_mask = sum(1 for k in predictor if re.fullmatch(r"mask_tokens\.\d+", k))
    fields = dict(pred_embed_dim=int(pe.shape[0]), pred_depth=count_blocks(predictor, "predictor_blocks"),
                  pred_num_heads=heads, pred_num_mask_tokens=max(n_mask, 1))
    return {**fields, **(v21_predictor_fields(predictor, dim) if v21 else {})}


def rope_size_warning(cfg: ModelConfig, *, hf_config: dict | None = None, img_size: int | None = None,
                      num_frames: int | None = None) -> str | None:
    """What `infer_config` assumed about the input size of a RoPE model when neither the caller nor a
    transformers config.json gave it (the weights do not show it), and how to override it; None otherwise."""
    hf = hf_config or {}
    missing = [flag for flag, given in (("--img-size", img_size or hf.get("crop_size")),
                                        ("--num-frames", num_frames or hf.get("frames_per_clip"))) if not given]
    if cfg.pos_embed != "rope" or not missing:
        return None
    origin = "the V-JEPA 2.1 hub's" if cfg.generation == "2.1" else "the V-JEPA 2 hub's"
    return (f"assumed {cfg.num_frames} frames at {cfg.img_size} px ({origin} size): a RoPE checkpoint does not "
            f"store its input size. The encoder reads any size, but the predictor decodes token ids on the "
            f"{'x'.join(map(str, cfg.grid()))} grid of this size unless given grid=; if the model was trained "
            f"otherwise, pass {' and '.join(missing)} to `vjepa convert`")


def is_ac_predictor(sd: dict | None) -> bool:
    """Whether an official-named predictor state dict is a V-JEPA 2-AC (action-conditioned) one."""
    return bool(sd) and any(k.startswith(AC_KEYS) for k in sd)


def _in_features(sd: dict, name: str) -> int:
    w = sd.get(f"{name}.weight")
    return int(w.shape[1]) if w is not None and w.ndim == 2 else 0


def infer_ac_config(predictor: dict, encoder_cfg: ModelConfig, *,
                    num_heads: int | None = None) -> tuple[ACPredictorConfig, list[str]]:
    """The `ACPredictorConfig` of an official-named 2-AC predictor state dict, and notes on what was assumed.

    Widths, depth, MLP ratio and the action/state/extrinsics sizes come from shapes; the patch grid from the
    encoder's `img_size / patch_size`. Heads are not visible in shapes: `num_heads`, else the official count for
    the width (16 for the released 1024-wide predictor). Positions are RoPE and the extrinsics token is off,
    as in every released model (neither shows in the weights).
    """
    notes: list[str] = []
    pe = predictor.get("predictor_embed.weight")
    ae = predictor.get("action_encoder.weight")
    if pe is None or pe.ndim != 2 or ae is None:
        raise VjepaError("the action-conditioned predictor weights lack predictor_embed.weight / action_encoder.weight")
    if any(k.startswith("mask_tokens.") for k in predictor):
        raise VjepaError("the predictor weights mix mask tokens with action/state encoders: neither a V-JEPA 2 "
                         "nor a V-JEPA 2-AC predictor", hint="pass --no-predictor to keep only the encoder")
    if "predictor_blocks.0.mlp.fc3.weight" in predictor:
        raise VjepaError("this action-conditioned predictor uses a SwiGLU MLP (use_silu), which is not supported")
    pdim, in_dim = int(pe.shape[0]), int(pe.shape[1])
    enc_dim = encoder_cfg.resolved_sizes()[0]
    if in_dim != enc_dim:
        raise VjepaError(f"the action-conditioned predictor reads {in_dim}-wide features but the encoder is "
                         f"{enc_dim} wide: they do not belong together")
    fc1 = predictor.get("predictor_blocks.0.mlp.fc1.weight")
    hidden = int(fc1.shape[0]) if fc1 is not None else 4 * pdim
    heads = num_heads or HEADS_BY_WIDTH.get(pdim)
    if heads is None:
        raise VjepaError(f"cannot tell the number of attention heads of a width-{pdim} predictor from its weights",
                         hint="pass --pred-num-heads")
    if num_heads is None:
        notes.append(f"{heads} predictor heads: the official 2-AC count for width {pdim} (not visible in the "
                     f"weights; override with --pred-num-heads)")
    edim = _in_features(predictor, "extrinsics_encoder")
    if edim:
        notes.append("extrinsics_encoder stored but unused, as in the released model (use_extrinsics off)")
    g = encoder_cfg.img_size // encoder_cfg.patch_size
    try:
        cfg = ACPredictorConfig(
            embed_dim=in_dim, pred_embed_dim=pdim, depth=count_blocks(predictor, "predictor_blocks"),
            num_heads=heads, mlp_ratio=_mlp_ratio(pdim, hidden, 4.0), action_dim=int(ae.shape[1]),
            state_dim=_in_features(predictor, "state_encoder"), grid=(g, g), pos="rope", extrinsics_dim=edim,
        )
    except ValueError as e:
        raise VjepaError(f"the inferred action-conditioned predictor is invalid: {e}",
                         hint="pass --pred-num-heads / --img-size") from None
    return cfg, notes
