"""The `transformers` V-JEPA 2 layout (`VJEPA2Model`) <-> ours (official names).

transformers splits the fused `attn.qkv` into `attention.{query,key,value}` (row thirds), stacks the
predictor's mask tokens into one `[n, 1, 1, Dp]` tensor and renames the containers (`encoder.layer.{i}`,
`encoder.embeddings.patch_embeddings`, `encoder.layernorm`, `predictor.embeddings.*`, `predictor.layer.{i}`,
`predictor.layernorm`, `predictor.proj`); it has no sin-cos tables (RoPE only).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.io.tensors import save_tensors

StateDict = dict[str, torch.Tensor]
_HF_LAYER = re.compile(r"^(encoder\.layer|predictor\.layer)\.(\d+)\.(.+)$")
_QKV = ("query", "key", "value")
# Non-block tensors: (our packed prefix, transformers prefix); both directions read this one table.
_RENAMES = (
    ("encoder.patch_embed.", "encoder.embeddings.patch_embeddings."),
    ("encoder.norm.", "encoder.layernorm."),
    ("predictor.predictor_embed.", "predictor.embeddings.predictor_embeddings."),
    ("predictor.predictor_norm.", "predictor.layernorm."),
    ("predictor.predictor_proj.", "predictor.proj."),
)


def _rename(key: str, to_hf: bool) -> str | None:
    """`key` under the other naming (packed `encoder.`/`predictor.` prefixes on our side), or None."""
    for ours, hf in _RENAMES:
        src, dst = (ours, hf) if to_hf else (hf, ours)
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def hf_to_ours(sd: StateDict) -> tuple[StateDict, StateDict | None, list[str]]:
    """transformers `VJEPA2Model` keys -> (encoder, predictor) with official names; q/k/v fused into qkv.

    Keys that do not map are kept under their own name so strict loading reports them.
    """
    notes = []
    if any(k.startswith("vjepa2.") for k in sd):  # VJEPA2ForVideoClassification: keep the backbone only
        dropped = [k for k in sd if not k.startswith("vjepa2.")]
        sd = {k.removeprefix("vjepa2."): v for k, v in sd.items() if k.startswith("vjepa2.")}
        if dropped:
            notes.append(f"dropped {len(dropped)} classification-head tensors")
    enc: StateDict = {}
    pred: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # (block prefix, weight|bias) -> q/k/v
    for k, v in sd.items():
        m = _HF_LAYER.match(k)
        if m:
            dst, blocks = (enc, "blocks") if m.group(1) == "encoder.layer" else (pred, "predictor_blocks")
            rest = m.group(3)
            parts = rest.split(".")
            if len(parts) == 3 and parts[0] == "attention" and parts[1] in _QKV:
                qkv.setdefault((f"{blocks}.{m.group(2)}", parts[2]), {})[parts[1]] = v
                continue
            dst[f"{blocks}.{m.group(2)}.{rest.replace('attention.', 'attn.', 1)}"] = v
        elif k == "predictor.embeddings.mask_tokens":  # (n, 1, 1, Dp) -> n x (1, 1, Dp)
            for i in range(v.shape[0]):
                pred[f"mask_tokens.{i}"] = v[i]
        elif (ours := _rename(k, to_hf=False)) is not None:
            side, name = ours.split(".", 1)
            (enc if side == "encoder" else pred)[name] = v
        else:
            (pred if k.startswith("predictor.") else enc)[k] = v
    for (prefix, kind), parts in qkv.items():
        dst = pred if prefix.startswith("predictor_") else enc
        if set(parts) == set(_QKV):
            dst[f"{prefix}.attn.qkv.{kind}"] = torch.cat([parts[n] for n in _QKV], dim=0)
        else:  # incomplete: keep as found, strict loading will list it
            dst.update({f"{prefix}.attn.{n}.{kind}": t for n, t in parts.items()})
    return enc, (pred or None), notes


def _ours_block_to_hf(name: str, v: torch.Tensor, hf_block: str, out: StateDict) -> None:
    rest = name.split(".", 2)[2]  # after "blocks.{i}."
    if rest.startswith("attn.qkv."):
        for n, part in zip(_QKV, v.chunk(3, dim=0), strict=True):
            out[f"{hf_block}.attention.{n}.{rest.rsplit('.', 1)[1]}"] = part
    else:
        out[f"{hf_block}.{rest.replace('attn.', 'attention.', 1)}"] = v


def to_hf_state_dict(sd: StateDict, cfg: ModelConfig) -> tuple[StateDict, dict]:
    """Our packed dict (`encoder.*`, `predictor.*`) -> (transformers `VJEPA2Model` state dict, its config.json)."""
    cfg = cfg.resolve()
    if cfg.pos_embed != "rope":
        raise VjepaError("transformers' VJEPA2Model supports RoPE (V-JEPA 2) models only; this one uses sin-cos")
    if cfg.generation == "2.1":
        raise VjepaError("transformers has no V-JEPA 2.1 model (its RoPE layout, image embedder and levels differ); "
                         "keep the vjepa model file")
    enc = {k.removeprefix("encoder."): v for k, v in sd.items() if not k.startswith("predictor.")}
    pred = {k.removeprefix("predictor."): v for k, v in sd.items() if k.startswith("predictor.")}
    out: StateDict = {}
    for k, v in enc.items():
        if k.startswith("blocks."):
            _ours_block_to_hf(k, v, f"encoder.layer.{k.split('.')[1]}", out)
        elif (hf := _rename("encoder." + k, to_hf=True)) is not None:
            out[hf] = v
        else:
            raise VjepaError(f"encoder tensor '{k}' has no transformers equivalent")
    pred_mlp = 4.0
    if pred:
        tokens = sorted((int(k.split(".")[1]), v) for k, v in pred.items() if k.startswith("mask_tokens."))
        out["predictor.embeddings.mask_tokens"] = torch.stack([v.reshape(1, 1, -1) for _, v in tokens])
        for k, v in pred.items():
            if k.startswith("predictor_blocks."):
                _ours_block_to_hf(k, v, f"predictor.layer.{k.split('.')[1]}", out)
            elif (hf := _rename("predictor." + k, to_hf=True)) is not None:
                out[hf] = v
            elif not k.startswith("mask_tokens."):
                raise VjepaError(f"predictor tensor '{k}' has no transformers equivalent")
        if "predictor_blocks.0.mlp.fc1.weight" in pred:
            pred_mlp = pred["predictor_blocks.0.mlp.fc1.weight"].shape[0] / cfg.pred_embed_dim
    hf_config = {
        "model_type": "vjepa2", "architectures": ["VJEPA2Model"],
        "patch_size": cfg.patch_size, "crop_size": cfg.img_size, "frames_per_clip": cfg.num_frames,
        "tubelet_size": cfg.tubelet_size, "hidden_size": cfg.embed_dim, "in_chans": cfg.in_chans,
        "num_attention_heads": cfg.num_heads, "num_hidden_layers": cfg.depth, "mlp_ratio": cfg.mlp_ratio,
        "layer_norm_eps": 1e-6, "qkv_bias": cfg.qkv_bias, "hidden_act": "gelu", "drop_path_rate": 0.0,
        "pred_hidden_size": cfg.pred_embed_dim, "pred_num_attention_heads": cfg.pred_num_heads,
        "pred_num_hidden_layers": cfg.pred_depth, "pred_num_mask_tokens": cfg.pred_num_mask_tokens,
        "pred_mlp_ratio": pred_mlp,
    }
    return out, hf_config


def write_hf_dir(path: str | Path, encoder_sd: StateDict, predictor_sd: StateDict | None, cfg: ModelConfig) -> Path:
    """Write `config.json` + `model.safetensors` that `transformers.VJEPA2Model.from_pretrained(path)` loads.

    Without a predictor, transformers initialises its predictor randomly (the encoder is unaffected).
    """
    path = Path(path)
    packed = {f"encoder.{k}": v for k, v in encoder_sd.items()}
    packed.update({f"predictor.{k}": v for k, v in (predictor_sd or {}).items()})
    hf_sd, hf_config = to_hf_state_dict(packed, cfg)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / "model.safetensors", hf_sd, metadata={"format": "pt"})
    write_text_atomic(path / "config.json", json.dumps(hf_config, indent=2) + "\n")
    return path
