"""Released attentive-probe weights -> our probe head's keys (`AttentiveClassifier`: `pooler.*`, `linear.*`).

- Official V-JEPA evaluation checkpoints: V-JEPA 1 `{"classifier": sd}` (cross-attention with an output
  projection, then self-attention over the query); V-JEPA 2 `{"classifiers": [sd, ...]}` (one per trained
  (lr, wd) head; self-attention over the tokens first, cross-attention without output projection). Our names
  are the official ones, so only a DDP `module.` prefix goes.
- `transformers` `VJEPA2ForVideoClassification`: `pooler.self_attention_layers.{i}` (separate q/k/v/out
  projections, `layer_norm1/2`), `pooler.cross_attention_layer` (q/k/v, no output projection) and `classifier`.
"""

from __future__ import annotations

import re

import torch

from vjepa_cli.errors import VjepaError

StateDict = dict[str, torch.Tensor]
_HF_SELF = re.compile(r"^pooler\.self_attention_layers\.(\d+)\.(.+)$")
_HF_NAMES = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.out_proj": "attn.proj"}


def is_official_probe(obj: object) -> bool:
    return isinstance(obj, dict) and ("classifiers" in obj or "classifier" in obj) and "encoder" not in obj


def official_probe_head(ckpt: dict, head: int | None = None) -> tuple[StateDict, list[str]]:
    """The state dict of one head of an official probe checkpoint, and notes on what was chosen."""
    notes = []
    if "classifiers" in ckpt:
        heads = ckpt["classifiers"]
        if not isinstance(heads, (list, tuple)) or not heads:
            raise VjepaError("the probe checkpoint's 'classifiers' is not a non-empty list")
        if head is None and len(heads) > 1:
            notes.append(f"the checkpoint holds {len(heads)} heads; took head 0 (choose with --head)")
        i = head or 0
        if not 0 <= i < len(heads):
            raise VjepaError(f"--head {i} is out of range: the checkpoint holds {len(heads)} heads")
        sd = heads[i]
    else:
        if head not in (None, 0):
            raise VjepaError("--head applies to V-JEPA 2 probe checkpoints with several heads; this one holds one")
        sd = ckpt["classifier"]
    if not isinstance(sd, dict):
        raise VjepaError("the probe checkpoint's head is not a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}, notes


def hf_probe_head(sd: StateDict) -> StateDict:
    """`VJEPA2ForVideoClassification` pooler + classifier tensors -> our `AttentiveClassifier` (V-JEPA 2 form)."""
    out: StateDict = {}
    fused: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # (our prefix, weight|bias) -> q/k/v
    for k, v in sd.items():
        if k.startswith("classifier."):
            out["linear." + k.removeprefix("classifier.")] = v
        elif k == "pooler.query_tokens":
            out[k] = v
        elif m := _HF_SELF.match(k):
            prefix, rest = f"pooler.blocks.{m.group(1)}", m.group(2)
            if p := re.match(r"self_attn\.([qkv])_proj\.(weight|bias)$", rest):
                fused.setdefault((f"{prefix}.attn.qkv", p.group(2)), {})[p.group(1)] = v
                continue
            for src, dst in _HF_NAMES.items():
                rest = rest.replace(src, dst)
            out[f"{prefix}.{rest}"] = v
        elif k.startswith("pooler.cross_attention_layer."):
            prefix, rest = "pooler.cross_attention_block", k.removeprefix("pooler.cross_attention_layer.")
            if p := re.match(r"cross_attn\.([qkv])_proj\.(weight|bias)$", rest):
                if p.group(1) == "q":
                    out[f"{prefix}.xattn.q.{p.group(2)}"] = v
                else:
                    fused.setdefault((f"{prefix}.xattn.kv", p.group(2)), {})[p.group(1)] = v
                continue
            out[f"{prefix}.{rest.replace('layer_norm1', 'norm1').replace('layer_norm2', 'norm2')}"] = v
        elif not k.startswith("vjepa2."):
            out[k] = v  # unknown: kept, so strict loading names it
    for (name, kind), parts in fused.items():
        order = "qkv" if name.endswith("qkv") else "kv"
        if set(parts) != set(order):
            raise VjepaError(f"incomplete attention projections for {name} (have {sorted(parts)})")
        out[f"{name}.{kind}"] = torch.cat([parts[c] for c in order], dim=0)
    return out


def head_layout(sd: StateDict, source: str = "the probe") -> tuple[str, int]:
    """(kind, depth) of an attentive head from its keys: `attentive-v2` when the cross-attention has no output
    projection, `attentive` otherwise; depth = 1 + its self-attention blocks."""
    if "pooler.query_tokens" not in sd or "linear.weight" not in sd:
        raise VjepaError(f"{source} is an attentive-probe checkpoint whose head cannot be read "
                         "(no pooler.query_tokens / linear.weight)")
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"pooler\.blocks\.(\d+)\.", k))}
    v2 = "pooler.cross_attention_block.xattn.proj.weight" not in sd
    return ("attentive-v2" if v2 else "attentive"), 1 + len(blocks)
