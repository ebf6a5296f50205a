"""Task `manifest`: any two labelled manifests (`vjepa preprocess`, or official `path label` lines) as --train / --val.

Class names come from a `labels.json` beside either manifest (when it names every class), else "0", "1", ...
"""

from __future__ import annotations

from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.tasks.common import TaskData, TaskRequest


def _class_names(train: Path, val: Path, n: int) -> list[str]:
    from vjepa_cli.data.manifest import class_names, read_labels

    for cand in (Path(train).parent / "labels.json", Path(val).parent / "labels.json"):
        if cand.is_file():
            names = class_names(read_labels(cand))
            if len(names) >= n:
                return names
            break
    return [str(i) for i in range(n)]


def load_manifests(train: Path | None, val: Path | None) -> TaskData:
    """Read both manifests; every video needs a label; videos missing on disk are skipped and counted."""
    from vjepa_cli.data.manifest import read_manifest

    if train is None or val is None:
        raise VjepaError("task 'manifest' needs --train and --val manifests", "make them with `vjepa preprocess`")
    splits = []
    for m in (train, val):
        rows = read_manifest(m)
        unlabelled = sum(r.label < 0 for r in rows)
        if unlabelled:
            raise VjepaError(f"{m}: {unlabelled} of {len(rows)} videos have no label", "a probe needs a label for every video")
        splits.append([(r.path, r.label) for r in rows])
    classes = _class_names(train, val, max(lbl for _, lbl in splits[0] + splits[1]) + 1)
    missing = 0
    kept = []
    for split in splits:
        ok = [(p, lbl) for p, lbl in split if Path(p).is_file()]
        missing += len(split) - len(ok)
        kept.append(ok)
    return TaskData(kept[0], kept[1], classes, missing=missing)


def load(req: TaskRequest) -> TaskData:
    return load_manifests(req.train, req.val)
