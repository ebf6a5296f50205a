"""Released attentive probes -> our probe file, so `vjepa classify` can use them (see `io.probe_layout`).

Sources: an official V-JEPA / V-JEPA 2 evaluation checkpoint (`.pth.tar`/`.pt`), or a `transformers`
`VJEPA2ForVideoClassification` folder (or its `model.safetensors`), whose class names come from `config.json`.
The clip protocol recorded in the probe file is the one of `task`'s probe recipe (frames, segments, views,
resolution), which is how the released probes were trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.probe import ProbeHeadConfig, load_probe_config
from vjepa_cli.errors import VjepaError


@dataclass
class ProbeConvertResult:
    source: str
    output: str
    source_format: str  # official-probe / hf-classifier
    kind: str
    depth: int
    num_heads: int
    dim: int
    num_classes: int
    task: str
    notes: list[str] = field(default_factory=list)


def is_probe_source(path: Path) -> bool:
    """Whether `path` holds a probe (an official probe checkpoint or a transformers classifier), by content."""
    from vjepa_cli.io.convert import _torch_load, sniff
    from vjepa_cli.io.probe_layout import is_official_probe
    from vjepa_cli.io.tensors import read_metadata

    kind = sniff(path)
    if kind == "dir":
        cfg = path / "config.json"
        return cfg.is_file() and "VJEPA2ForVideoClassification" in cfg.read_text()
    if kind == "safetensors":
        cfg = path.with_name("config.json")
        return (cfg.is_file() and "VJEPA2ForVideoClassification" in cfg.read_text()
                and read_metadata(path).get("format") != "vjepa-model")
    if kind in ("zip", "pickle"):
        return is_official_probe(_torch_load(path, mmap=kind == "zip"))
    return False


def _read_source(path: Path, head: int | None) -> tuple[dict, str, dict | None, list[str]]:
    """(our head state dict, source format, transformers config or None, notes)."""
    from vjepa_cli.io.convert import _torch_load, sniff
    from vjepa_cli.io.probe_layout import hf_probe_head, official_probe_head
    from vjepa_cli.io.tensors import load_tensors

    kind = sniff(path)
    if kind in ("zip", "pickle"):
        sd, notes = official_probe_head(_torch_load(path, mmap=kind == "zip"), head)
        return sd, "official-probe", None, notes
    folder = path if kind == "dir" else path.parent
    hf_config = json.loads((folder / "config.json").read_text())
    tensors, _ = load_tensors(folder / "model.safetensors" if kind == "dir" else path)
    dropped = sum(k.startswith("vjepa2.") for k in tensors)
    notes = [f"left out the {dropped} backbone tensors (convert them to a model file with `vjepa convert`)"]
    return hf_probe_head(tensors), "hf-classifier", hf_config, notes


def _classes(n: int, classes_file: Path | None, hf_config: dict | None) -> list[str]:
    if classes_file is not None:
        names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
        if len(names) != n:
            raise VjepaError(f"{classes_file} names {len(names)} classes but the probe has {n} outputs")
        return names
    labels = (hf_config or {}).get("id2label") or {}
    if len(labels) == n:
        return [str(labels.get(str(i), labels.get(i, i))) for i in range(n)]
    return [str(i) for i in range(n)]


def convert_probe(src: str | Path, dst: str | Path, *, task: str = "manifest", classes_file: str | Path | None = None,
                  head: int | None = None, num_heads: int | None = None, overwrite: bool = False) -> ProbeConvertResult:
    """Write our probe file for the released probe `src`; its weights load strictly into our head."""
    from vjepa_cli.eval.probe.heads import build_head
    from vjepa_cli.io.probe_layout import head_layout
    from vjepa_cli.io.tensors import save_tensors
    from vjepa_cli.models.load import load_strict

    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise VjepaError(f"{dst} already exists", hint="pass --overwrite to replace it")
    sd, fmt, hf_config, notes = _read_source(src, head)
    kind, depth = head_layout(sd, str(src))
    dim, num_classes = int(sd["pooler.query_tokens"].shape[-1]), int(sd["linear.weight"].shape[0])
    cfg = load_probe_config(task)
    heads = num_heads or (hf_config or {}).get("num_attention_heads") or cfg.probe.num_heads
    head_cfg = ProbeHeadConfig(kind=kind, depth=depth, num_heads=int(heads), layers=cfg.probe.layers)
    module = build_head(head_cfg, dim, num_classes, torch.Generator().manual_seed(0))
    load_strict(module, {k: v.float() for k, v in sd.items()}, "probe head", str(src))
    cfg = replace(cfg, probe=head_cfg)
    names = _classes(num_classes, Path(classes_file) if classes_file else None, hf_config)
    meta = {"format": "vjepa-probe", "task": cfg.task, "classes": names, "kind": kind, "probe": to_dict(head_cfg),
            "data": to_dict(cfg.data), "model": "", "model_id": "", "source": str(src.resolve()),
            "source_format": fmt}
    save_tensors(dst, {k: v.detach().float() for k, v in module.state_dict().items()}, meta)
    return ProbeConvertResult(str(src), str(dst), fmt, kind, depth, int(heads), dim, num_classes, cfg.task, notes)
