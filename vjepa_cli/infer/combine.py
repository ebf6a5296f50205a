"""One file for a whole `vjepa extract` run (`--combined`), for users of numpy and scikit-learn:

    from safetensors.numpy import load_file
    d = load_file("all.safetensors")
    X, y = d["features"], d["labels"][d["video_index"]]    # one row per window, its video's label

Tensors: `features` [sum W, ...] (every window of every video, in input order), `video_index` [sum W] (int64,
which video a window came from), `timestamps` [sum W, 2] (seconds), `labels` [videos] (int64, -1 when unknown).
Metadata (`safe_open(...).metadata()`, JSON strings): `paths` (the videos, in order), `class_names` when a
manifest's labels.json names them, and the settings of the per-video files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

from vjepa_cli.errors import VjepaError

FORMAT = "vjepa-features-combined/1"


def manifest_labels(inputs: Iterable[str | Path]) -> tuple[dict[str, int], list[str] | None]:
    """Labels of the videos listed in manifest inputs (absolute path -> label), and the class names of a
    labels.json beside the first manifest that has one."""
    from vjepa_cli.data.manifest import read_manifest
    from vjepa_cli.infer.inputs import MANIFEST_EXTS

    labels: dict[str, int] = {}
    names = None
    for item in inputs:
        p = Path(str(item))
        if p.suffix.lower() in MANIFEST_EXTS and p.is_file():
            labels.update({str(Path(r.path).resolve()): int(r.label) for r in read_manifest(p)})
            lj = p.with_name("labels.json")
            if names is None and lj.is_file():
                try:
                    mapping = json.loads(lj.read_text())
                    names = [n for n, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
                except (json.JSONDecodeError, AttributeError, TypeError):
                    names = None
    return labels, names


def write_combined(dst: str | Path, outputs: list[tuple[str, str]], labels: dict[str, int],
                   class_names: list[str] | None) -> Path:
    """Concatenate the per-video feature files `outputs` ((video path, feature file) in input order) into `dst`."""
    from vjepa_cli.io.tensors import load_tensors, meta_json, save_tensors

    if not outputs:
        raise VjepaError("--combined: no video was extracted, so there is nothing to combine")
    feats, times, index, paths, settings = [], [], [], [], None
    for i, (video, file) in enumerate(outputs):
        tensors, meta = load_tensors(file)
        if settings is None:
            settings = {k: meta_json(meta, k) for k in ("settings_id", "model", "model_id", "pool", "frames",
                                                         "frame_step", "crop", "views", "grid", "levels") if k in meta}
        elif meta.get("settings_id") != settings.get("settings_id"):
            raise VjepaError(f"--combined: {file} was made with other settings than the first file",
                             hint="re-run with --overwrite so every file has the same settings")
        if feats and tensors["features"].shape[1:] != feats[0].shape[1:]:
            raise VjepaError(f"--combined: {video} gives features {list(tensors['features'].shape[1:])} per window, "
                             f"the first video {list(feats[0].shape[1:])}",
                             hint="combine videos and images separately, or use --pool mean")
        feats.append(tensors["features"])
        times.append(tensors["timestamps"])
        index.append(torch.full((len(tensors["features"]),), i, dtype=torch.int64))
        paths.append(str(video))
    y = torch.tensor([labels.get(str(Path(p).resolve()), -1) for p in paths], dtype=torch.int64)
    meta = {"format": FORMAT, "paths": paths, **settings}
    if class_names is not None:
        meta["class_names"] = class_names
    return save_tensors(dst, {"features": torch.cat(feats), "video_index": torch.cat(index),
                              "timestamps": torch.cat(times), "labels": y}, meta)


def combine_run(dst: str | Path, inputs: Iterable[str | Path], outputs: list[tuple[str, str]]) -> str:
    """`write_combined` for a run of `vjepa extract`: labels and class names from the manifests among `inputs`."""
    labels, names = manifest_labels(inputs if isinstance(inputs, (list, tuple)) else [])
    return str(write_combined(dst, outputs, labels, names))
