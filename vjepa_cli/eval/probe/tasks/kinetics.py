"""Kinetics-400 / 600 / 700 (Kay et al., 2017; Carreira et al., 2018, 2019): one layout for the three.

Layout: CSV `label,youtube_id,time_start,time_end,split` (`train.csv`, `validate.csv` or `val.csv`, in DIR or
DIR/annotations); videos named `<youtube_id>_<start:06d>_<end:06d>.<ext>` (or `<youtube_id>.<ext>`) anywhere
under DIR/train and DIR/val|validate (class subfolders or flat).
"""

from __future__ import annotations

import csv
from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.tasks import common
from vjepa_cli.runtime import VIDEO_EXTS

SPLITS = (["train.csv"], ["validate.csv", "val.csv", "validation.csv"])
COLUMNS = {"label", "youtube_id", "time_start", "time_end"}


def _read_rows(f: Path) -> list[dict[str, str]]:
    try:
        with open(f, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise VjepaError(f"cannot read {f}: {e}") from None
    if not rows or not COLUMNS <= set(rows[0]):
        raise VjepaError(f"{f}: not the Kinetics layout", "expected a CSV header label,youtube_id,time_start,time_end,split")
    return rows


def _entries(rows: list[dict[str, str]], to_idx: dict[str, int]) -> list[tuple[list[str], int]]:
    """(candidate stems, label) of every row: the trimmed clip's name first, then the whole video's."""
    entries = []
    for r in rows:
        if r["label"] not in to_idx:
            raise VjepaError(f"Kinetics label {r['label']!r} is in the validation CSV but has no training videos")
        try:
            s, e = int(float(r["time_start"])), int(float(r["time_end"]))
        except ValueError:
            raise VjepaError(f"Kinetics CSV: bad time_start/time_end in row {r}") from None
        entries.append(([f"{r['youtube_id']}_{s:06d}_{e:06d}", r["youtube_id"]], to_idx[r["label"]]))
    return entries


def load_kinetics(root: Path) -> common.TaskData:
    """Read the Kinetics CSVs under `root` and find their videos; classes are the sorted training labels."""
    ann = root / "annotations" if (root / "annotations").is_dir() else root
    rows_by_split = [_read_rows(common.first_file(ann, names, "Kinetics CSV " + names[0])) for names in SPLITS]
    classes = sorted({r["label"] for r in rows_by_split[0]})
    to_idx = {c: i for i, c in enumerate(classes)}
    index = common.index_files([root / "train", root / "val", root / "validate", root / "videos"], tuple(VIDEO_EXTS))
    return common.split_data([_entries(rows, to_idx) for rows in rows_by_split], index, classes)
