"""Diving48 (Li et al., 2018).

Layout: `Diving48_V2_train.json` / `Diving48_V2_test.json` (or V1 names) lists of {vid_name, label};
videos `rgb/<vid_name>.mp4`; class names from `Diving48_vocab.json` when present.
"""

from __future__ import annotations

from pathlib import Path

from vjepa_cli.eval.probe.tasks import common

SPLITS = (["Diving48_V2_train.json", "Diving48_train.json"], ["Diving48_V2_test.json", "Diving48_test.json"])


def _vocab(root: Path) -> list[str]:
    """Class names from the vocabulary file (each a list of dive attributes), else "0" .. "47"."""
    vocab = root / "Diving48_vocab.json"
    if vocab.is_file():
        v = common.read_json(vocab)
        if isinstance(v, list):
            return [" / ".join(x) if isinstance(x, list) else str(x) for x in v]
    return [str(i) for i in range(48)]


def _entries(f: Path) -> list[tuple[list[str], int]]:
    return [([str(d["vid_name"])], int(d["label"])) for d in common.read_json_list(f, ("vid_name", "label"), "Diving48")]


def load_diving48(root: Path) -> common.TaskData:
    """Read the Diving48 annotations under `root` and find their videos."""
    vocab = _vocab(root)
    index = common.index_files([root / "rgb", root], (".mp4",))
    entries = [_entries(common.first_file(root, names, "Diving48 annotation " + names[0])) for names in SPLITS]
    data = common.split_data(entries, index, vocab)
    n = max((lbl for _, lbl in data.train + data.val), default=-1) + 1
    if len(vocab) < n:  # labels beyond the vocabulary: number the classes instead
        data.classes = [str(i) for i in range(n)]
    return data
