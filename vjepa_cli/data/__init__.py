"""Video data: readers, clip sampling, transforms, manifests, datasets and samplers, synthetic videos.

Import from the submodules (`vjepa_cli.data.dataset`, ...); the names below are re-exported lazily so that
`import vjepa_cli.data` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VideoInfo": "media", "VideoReadError": "media", "open_video": "media", "probe_video": "media",
    "read_frames": "media", "iter_windows": "media",
    "clip_indices": "sampling", "resolve_frame_step": "sampling",
    "normalize_clips": "transforms", "train_transform": "transforms", "eval_views": "transforms",
    "ManifestRow": "manifest", "read_manifest": "manifest", "write_manifest": "manifest",
    "read_labels": "manifest", "write_labels": "manifest",
    "VideoClipDataset": "dataset", "FailureLog": "dataset", "collate_clips": "dataset",
    "StepBatchSampler": "sampler", "build_pretrain_loader": "sampler",
    "generate_synth": "synth", "ensure_synth": "synth", "resolve_datasets": "sources",
    "run_preprocess": "preprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"vjepa_cli.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vjepa_cli.data' has no attribute {name!r}")
