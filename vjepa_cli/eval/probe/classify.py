"""Apply a trained probe to new videos: `load_probe` and `classify` (what `vjepa classify` runs).

A probe file (`probe.safetensors` from `vjepa probe`) holds the head's weights and, in its metadata, the class
names, the head architecture, the clip protocol it was trained with (frames, frame step, segments, views,
resolution) and the fingerprint of the model whose features it reads. Videos are read exactly as the probe's
validation videos were (fixed clip positions, `views` crops, the views' softmax averaged), so a video from
the validation set gets the same prediction here as in `vjepa probe`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vjepa_cli.config._load import from_dict
from vjepa_cli.config.probe import ProbeConfig, ProbeDataConfig, ProbeHeadConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import IMAGE_EXTS

log = logging.getLogger(__name__)


@dataclass
class LoadedProbe:
    """A probe head ready to classify: the module (eval mode), its classes and the protocol it was trained with."""

    head: torch.nn.Module
    classes: list[str]
    config: ProbeConfig  # task, clip protocol (data) and head architecture (probe) of the training run
    dim: int  # feature width the head reads
    model: str  # the model file the probe was trained on (as recorded)
    model_id: str  # that model's fingerprint
    metadata: dict = field(default_factory=dict)


@dataclass
class Prediction:
    """The probe's answer for one input: the top-k classes with probabilities, or the reason it failed."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "label": self.top[0][0], "prob": self.top[0][1],
                "top": [{"label": c, "prob": p} for c, p in self.top]}


def load_probe(path: str | Path, device: str | torch.device | None = None) -> LoadedProbe:
    """Read a probe file written by `vjepa probe` (strictly: every weight the head needs, nothing else)."""
    from vjepa_cli.eval.probe.heads import build_head
    from vjepa_cli.io.tensors import load_tensors, meta_json
    from vjepa_cli.models.load import load_strict
    from vjepa_cli.runtime import resolve_device

    path = Path(path)
    if not path.is_file():
        raise VjepaError(f"probe file not found: {path}", hint="train one with `vjepa probe ... -o DIR` "
                                                               "(it writes DIR/probe.safetensors)")
    sd, meta = load_tensors(path)
    if meta.get("format") != "vjepa-probe":
        raise VjepaError(f"{path} is not a probe file (no 'vjepa-probe' format in its metadata)",
                         hint="a model file goes to --model; the probe is the probe.safetensors `vjepa probe` wrote")
    try:
        classes = meta_json(meta, "classes")
        data_cfg = from_dict(ProbeDataConfig, meta_json(meta, "data"))
        head_cfg = from_dict(ProbeHeadConfig, meta_json(meta, "probe"))
    except (KeyError, ValueError, TypeError) as e:
        raise VjepaError(f"{path}: unreadable probe metadata ({e})", hint="re-run `vjepa probe` to write it again") from e
    dim = _head_width(sd, path)
    head = build_head(head_cfg, dim, len(classes), torch.Generator().manual_seed(0))
    load_strict(head, sd, "probe head", str(path))
    cfg = ProbeConfig(task=str(meta.get("task", "manifest")), data=data_cfg, probe=head_cfg)
    head = head.to(resolve_device(device, default="cpu")).eval()
    return LoadedProbe(head, list(classes), cfg, dim, str(meta.get("model", "")), str(meta.get("model_id", "")), meta)


def _head_width(sd: dict, path: Path) -> int:
    """The feature width the stored head reads: its query tokens (attentive) or its input norm (linear)."""
    for key in ("pooler.query_tokens", "norm.running_mean"):
        if key in sd:
            return int(sd[key].shape[-1])
    raise VjepaError(f"{path}: cannot tell the feature width of this probe head")


@dataclass
class Classifier:
    """A probe and the frozen encoder whose features it reads, on one device."""

    probe: LoadedProbe
    encoder: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    model_path: Path


def load_classifier(probe_path: str | Path, model: str | Path | None = None, device: str | None = None,
                    dtype: str = "fp32") -> Classifier:
    """The probe at `probe_path` and its encoder: `model`, else the model recorded in the probe (when that file
    still exists), else $VJEPA_MODEL. A probe of a randomly initialised encoder rebuilds that initialisation."""
    import os

    from vjepa_cli.eval.probe.run import _random_init
    from vjepa_cli.infer.model import load_eval_model, model_fingerprint
    from vjepa_cli.runtime import resolve_device, torch_dtype

    dev = resolve_device(device)
    probe = load_probe(probe_path, dev)
    if model is None and not os.environ.get("VJEPA_MODEL") and probe.model and Path(probe.model).exists():
        model = probe.model
    loaded = load_eval_model(model, dev, dtype)
    path = Path(model or os.environ.get("VJEPA_MODEL", ""))
    model_id = model_fingerprint(path, loaded.config, getattr(loaded, "metadata", None))
    if "-random" in probe.model_id and probe.model_id.startswith(model_id):
        seed = int(probe.model_id.rsplit("-random", 1)[1])
        loaded, model_id = _random_init(loaded, seed), f"{model_id}-random{seed}"
    from vjepa_cli.eval.probe.features import readout_width

    width = readout_width(loaded.encoder, probe.config.probe)
    check_model_for_probe(probe, model_id, width)
    return Classifier(probe, loaded.encoder, dev, torch_dtype(dtype) or torch.float32, path)


def check_model_for_probe(probe: LoadedProbe, model_id: str, width: int) -> None:
    """Refuse a model whose features the head cannot read; warn when it is not the model the probe was trained on."""
    if width != probe.dim:
        raise VjepaError(f"the probe reads {probe.dim}-wide features but this model gives {width}",
                         hint=f"use the model the probe was trained on ({probe.model or 'see the probe metadata'})")
    if probe.model_id and model_id != probe.model_id:
        log.warning("the probe was trained on features of another model (%s); its predictions may be meaningless",
                    probe.model or probe.model_id)


def classify(probe: LoadedProbe, encoder: torch.nn.Module, paths: list[Path], *, top_k: int = 5,
             device: torch.device, dtype: torch.dtype = torch.float32, batch_size: int = 4,
             on_done: Callable[[int], None] | None = None) -> Iterator[Prediction]:
    """Predictions for `paths` (videos or images), in order; an unreadable file gives a Prediction with `error`."""
    from vjepa_cli.eval.probe.features import ProbeClips

    k = max(1, min(top_k, len(probe.classes)))
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        items = []
        for p in chunk:
            ds = ProbeClips([(str(p), 0)], probe.config, train=False, images=p.suffix.lower() in IMAGE_EXTS)
            item = ds[0] if p.is_file() else {"clip": None, "error": f"{p.name}: file not found"}
            items.append(item)
        ok = [i for i, it in enumerate(items) if it["clip"] is not None]
        probs = _probabilities(probe, encoder, [items[i]["clip"] for i in ok], device, dtype) if ok else None
        row = {i: r for r, i in enumerate(ok)}
        for i, (p, it) in enumerate(zip(chunk, items, strict=True)):
            if i not in row:
                yield Prediction(str(p), error=it["error"].split(": ", 1)[-1])
                continue
            pr, idx = probs[row[i]].topk(k)
            yield Prediction(str(p), [(probe.classes[int(j)], round(float(q), 6)) for q, j in zip(pr, idx, strict=True)])
        if on_done is not None:
            on_done(len(chunk))


@torch.no_grad()
def _probabilities(probe: LoadedProbe, encoder, clips: list[torch.Tensor], device, dtype) -> torch.Tensor:
    """uint8 clips [V, S, C, T, R, R] each -> class probabilities [B, C] (mean of the views' softmax)."""
    from vjepa_cli.eval.probe.features import probe_features

    x = torch.stack(clips)  # (B, V, S, C, T, R, R)
    feats = probe_features(encoder, x, probe.config.probe, device, dtype)  # (B, V, S*N, D')
    B, V = feats.shape[:2]
    logits = probe.head(feats.flatten(0, 1).to(device))  # (B*V, C)
    return logits.float().softmax(-1).reshape(B, V, -1).mean(1).cpu()

