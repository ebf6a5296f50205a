"""Something-Something v2 (Goyal et al., 2017).

Layout: `labels.json` {template: "index"}, `train.json` / `validation.json` lists of {id, template, ...}
(in DIR or DIR/labels), videos `<id>.webm` in DIR/20bn-something-something-v2, DIR/videos or DIR.
"""

from __future__ import annotations

from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.tasks import common
from vjepa_cli.runtime import VIDEO_EXTS

SPLITS = (["train.json", "something-something-v2-train.json"],
          ["validation.json", "something-something-v2-validation.json"])


def _classes(ann: Path) -> dict[str, int]:
    """Template -> class index, from labels.json."""
    labels = common.read_json(common.first_file(ann, ["labels.json", "something-something-v2-labels.json"], "SSv2 labels.json"))
    if not isinstance(labels, dict):
        raise VjepaError(f"{ann}/labels.json: expected a mapping of template to index (the SSv2 layout)")
    return {str(k): int(v) for k, v in labels.items()}


def _entries(f: Path, to_idx: dict[str, int]) -> list[tuple[list[str], int]]:
    """(candidate stems, label) of every video of one annotation file."""
    entries = []
    for d in common.read_json_list(f, ("id", "template"), "SSv2"):
        t = str(d["template"]).replace("[", "").replace("]", "")
        if t not in to_idx:
            raise VjepaError(f"{f}: template {t!r} (video {d['id']}) is not in labels.json")
        entries.append(([str(d["id"])], to_idx[t]))
    return entries


def load_ssv2(root: Path) -> common.TaskData:
    """Read the SSv2 annotations under `root` and find their videos."""
    ann = root / "labels" if (root / "labels" / "labels.json").is_file() else root
    to_idx = _classes(ann)
    classes = [""] * (max(to_idx.values()) + 1)
    for k, v in to_idx.items():
        classes[v] = k
    index = common.index_files([root / "20bn-something-something-v2", root / "videos", root], tuple(VIDEO_EXTS))
    entries = [_entries(common.first_file(ann, names, "SSv2 annotation " + names[0]), to_idx) for names in SPLITS]
    return common.split_data(entries, index, classes)
