"""Probe tasks: where each benchmark keeps its videos and labels, read into one list of (path, label).

Layouts (as the datasets ship them):
- `ssv2`: `labels.json` {template: "index"}, `train.json` / `validation.json` lists of {id, template, ...}
  (in DIR or DIR/labels), videos `<id>.webm` in DIR/20bn-something-something-v2, DIR/videos or DIR.
- `k400` / `k600` / `k700`: CSV `label,youtube_id,time_start,time_end,split` (`train.csv`, `validate.csv` or
  `val.csv`, in DIR or DIR/annotations); videos named `<youtube_id>_<start:06d>_<end:06d>.<ext>` (or
  `<youtube_id>.<ext>`) anywhere under DIR/train and DIR/val|validate (class subfolders or flat).
- `diving48`: `Diving48_V2_train.json` / `Diving48_V2_test.json` (or V1 names) lists of {vid_name, label};
  videos `rgb/<vid_name>.mp4`; class names from `Diving48_vocab.json` when present.
- `in1k`: image folders DIR/train/<class>/* and DIR/val/<class>/*; each image is repeated to the clip length.
- `manifest`: any manifest (`vjepa preprocess`, or official `path label` lines) given as --train / --val.
- `synth-motion` / `synth-shapes`: generated on first use into a cache folder (no data needed).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import VIDEO_EXTS

log = logging.getLogger(__name__)
IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


@dataclass
class TaskData:
    """A task's samples: (path, label) for each split, class names, and what was skipped."""

    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    classes: list[str]
    images: bool = False  # samples are still images (repeated to the clip length)
    missing: int = 0  # annotated videos not found on disk
    notes: list[str] = field(default_factory=list)  # warnings for the report

    def check(self, where: str) -> None:
        """Refuse an empty split; note classes with no training videos."""
        for name, split in (("training", self.train), ("validation", self.val)):
            if not split:
                raise VjepaError(f"{where}: no {name} videos found", "check --data-root and the task's layout (vjepa probe --help)")
        seen = Counter(lbl for _, lbl in self.train)
        empty = [c for i, c in enumerate(self.classes) if seen[i] == 0]
        if empty:
            self.notes.append(f"{len(empty)} of {len(self.classes)} classes have no training videos (e.g. {empty[0]!r})")
        bad = [lbl for _, lbl in self.train + self.val if not 0 <= lbl < len(self.classes)]
        if bad:
            raise VjepaError(f"{where}: label {bad[0]} is outside the {len(self.classes)} classes")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise VjepaError(f"cannot read {path}: {e}") from None


def _first(root: Path, names: list[str], what: str) -> Path:
    for n in names:
        if (root / n).is_file():
            return root / n
    raise VjepaError(f"{root}: no {what} found", "expected one of: " + ", ".join(names))


def _index_files(dirs: list[Path], exts: tuple[str, ...]) -> dict[str, str]:
    """stem -> path of every file with one of `exts` under `dirs` (recursively)."""
    out: dict[str, str] = {}
    for d in dirs:
        if d.is_dir():
            for p in d.rglob("*"):
                if p.suffix.lower() in exts and p.stem not in out:
                    out[p.stem] = str(p)
    return out


def _resolve(entries: list[tuple[list[str], int]], index: dict[str, str]) -> tuple[list[tuple[str, int]], int]:
    """Keep the entries whose video exists (first matching stem); count the rest."""
    found, missing = [], 0
    for stems, label in entries:
        path = next((index[s] for s in stems if s in index), None)
        if path is None:
            missing += 1
        else:
            found.append((path, label))
    return found, missing


def load_ssv2(root: Path) -> TaskData:
    ann = root / "labels" if (root / "labels" / "labels.json").is_file() else root
    labels = _read_json(_first(ann, ["labels.json", "something-something-v2-labels.json"], "SSv2 labels.json"))
    if not isinstance(labels, dict):
        raise VjepaError(f"{ann}/labels.json: expected a mapping of template to index (the SSv2 layout)")
    to_idx = {str(k): int(v) for k, v in labels.items()}
    classes = [""] * (max(to_idx.values()) + 1)
    for k, v in to_idx.items():
        classes[v] = k
    index = _index_files([root / "20bn-something-something-v2", root / "videos", root], tuple(VIDEO_EXTS))
    splits, missing = [], 0
    for names in (["train.json", "something-something-v2-train.json"],
                  ["validation.json", "something-something-v2-validation.json"]):
        f = _first(ann, names, "SSv2 annotation " + names[0])
        data = _read_json(f)
        if not isinstance(data, list) or (data and not (isinstance(data[0], dict) and {"id", "template"} <= set(data[0]))):
            raise VjepaError(f"{f}: not the SSv2 layout", "expected a JSON list of {\"id\", \"template\", ...} objects")
        entries = []
        for d in data:
            t = str(d["template"]).replace("[", "").replace("]", "")
            if t not in to_idx:
                raise VjepaError(f"{f}: template {t!r} (video {d['id']}) is not in labels.json")
            entries.append(([str(d["id"])], to_idx[t]))
        found, m = _resolve(entries, index)
        splits.append(found)
        missing += m
    return TaskData(splits[0], splits[1], classes, missing=missing)


def load_kinetics(root: Path) -> TaskData:
    ann = root / "annotations" if (root / "annotations").is_dir() else root
    rows_by_split = []
    for names in (["train.csv"], ["validate.csv", "val.csv", "validation.csv"]):
        f = _first(ann, names, "Kinetics CSV " + names[0])
        try:
            with open(f, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise VjepaError(f"cannot read {f}: {e}") from None
        need = {"label", "youtube_id", "time_start", "time_end"}
        if not rows or not need <= set(rows[0]):
            raise VjepaError(f"{f}: not the Kinetics layout", "expected a CSV header label,youtube_id,time_start,time_end,split")
        rows_by_split.append(rows)
    classes = sorted({r["label"] for r in rows_by_split[0]})
    to_idx = {c: i for i, c in enumerate(classes)}
    index = _index_files([root / "train", root / "val", root / "validate", root / "videos"], tuple(VIDEO_EXTS))
    splits, missing = [], 0
    for rows in rows_by_split:
        entries = []
        for r in rows:
            if r["label"] not in to_idx:
                raise VjepaError(f"Kinetics label {r['label']!r} is in the validation CSV but has no training videos")
            try:
                s, e = int(float(r["time_start"])), int(float(r["time_end"]))
            except ValueError:
                raise VjepaError(f"Kinetics CSV: bad time_start/time_end in row {r}") from None
            entries.append(([f"{r['youtube_id']}_{s:06d}_{e:06d}", r["youtube_id"]], to_idx[r["label"]]))
        found, m = _resolve(entries, index)
        splits.append(found)
        missing += m
    return TaskData(splits[0], splits[1], classes, missing=missing)


def load_diving48(root: Path) -> TaskData:
    vocab = root / "Diving48_vocab.json"
    classes = [str(i) for i in range(48)]
    if vocab.is_file():
        v = _read_json(vocab)
        if isinstance(v, list):
            classes = [" / ".join(x) if isinstance(x, list) else str(x) for x in v]
    index = _index_files([root / "rgb", root], (".mp4",))
    splits, missing = [], 0
    for names in (["Diving48_V2_train.json", "Diving48_train.json"], ["Diving48_V2_test.json", "Diving48_test.json"]):
        f = _first(root, names, "Diving48 annotation " + names[0])
        data = _read_json(f)
        if not isinstance(data, list) or (data and not (isinstance(data[0], dict) and {"vid_name", "label"} <= set(data[0]))):
            raise VjepaError(f"{f}: not the Diving48 layout", "expected a JSON list of {\"vid_name\", \"label\", ...} objects")
        found, m = _resolve([([str(d["vid_name"])], int(d["label"])) for d in data], index)
        splits.append(found)
        missing += m
    n = max((lbl for _, lbl in splits[0] + splits[1]), default=-1) + 1
    classes = classes if len(classes) >= n else [str(i) for i in range(n)]
    return TaskData(splits[0], splits[1], classes, missing=missing)


def load_image_folders(root: Path) -> TaskData:
    tr, va = root / "train", next((root / n for n in ("val", "validation") if (root / n).is_dir()), root / "val")
    for d in (tr, va):
        if not d.is_dir():
            raise VjepaError(f"{d} not found", "in1k layout: DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg")
    classes = sorted(p.name for p in tr.iterdir() if p.is_dir())
    if not classes:
        raise VjepaError(f"{tr} has no class subfolders", "in1k layout: DIR/train/<class>/*.jpg")
    to_idx = {c: i for i, c in enumerate(classes)}
    splits = []
    for d in (tr, va):
        items = []
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            if cdir.name not in to_idx:
                raise VjepaError(f"class folder {cdir} has no training counterpart in {tr}")
            items += [(str(p), to_idx[cdir.name]) for p in sorted(cdir.iterdir()) if p.suffix.lower() in IMAGE_EXTS]
        splits.append(items)
    return TaskData(splits[0], splits[1], classes, images=True)


def load_manifests(train: Path | None, val: Path | None) -> TaskData:
    from vjepa_cli.data.manifest import class_names, read_labels, read_manifest

    if train is None or val is None:
        raise VjepaError("task 'manifest' needs --train and --val manifests", "make them with `vjepa preprocess`")
    splits = []
    for m in (train, val):
        rows = read_manifest(m)
        unlabelled = sum(r.label < 0 for r in rows)
        if unlabelled:
            raise VjepaError(f"{m}: {unlabelled} of {len(rows)} videos have no label", "a probe needs a label for every video")
        splits.append([(r.path, r.label) for r in rows])
    n = max(lbl for _, lbl in splits[0] + splits[1]) + 1
    classes = [str(i) for i in range(n)]
    for cand in (Path(train).parent / "labels.json", Path(val).parent / "labels.json"):
        if cand.is_file():
            names = class_names(read_labels(cand))
            if len(names) >= n:
                classes = names
            break
    missing = 0
    kept = []
    for split in splits:
        ok = [(p, lbl) for p, lbl in split if Path(p).is_file()]
        missing += len(split) - len(ok)
        kept.append(ok)
    return TaskData(kept[0], kept[1], classes, missing=missing)


def load_synth(task: str, cache: Path | None, n_train: int, n_val: int, seed: int,
               progress: Callable[[int], None] | None = None) -> TaskData:
    """Generate (once, into the synth cache) and read the built-in synthetic task; `progress(k)`: k videos made."""
    from vjepa_cli.config.data import SynthSpec
    from vjepa_cli.data.synth import ensure_synth

    n = n_train + n_val
    spec = SynthSpec(task=task.removeprefix("synth-"), videos=n, seed=seed, val_fraction=n_val / n)
    res = ensure_synth(spec, None if cache is None else str(cache), progress=progress)
    data = load_manifests(res.train_manifest, res.val_manifest)
    data.classes = list(res.class_names)
    return data


def load_task(task: str, data_root: Path | None, train: Path | None = None, val: Path | None = None,
              synth_cache: Path | None = None, synth_sizes: tuple[int, int] = (2000, 500), seed: int = 0,
              progress: Callable[[int], None] | None = None) -> TaskData:
    """Read a task's samples. Raises `VjepaError` for a missing root or a wrong layout.

    `progress(k)` reports synthetic videos generated so far (synth tasks, first use only).
    """
    if task.startswith("synth-"):
        data = load_synth(task, synth_cache, synth_sizes[0], synth_sizes[1], seed, progress)
    elif task == "manifest":
        data = load_manifests(train, val)
    else:
        if data_root is None:
            raise VjepaError(f"task '{task}' needs --data-root", "the folder that holds the dataset")
        root = Path(data_root)
        if not root.is_dir():
            raise VjepaError(f"data root not found: {root}")
        loader = {"ssv2": load_ssv2, "diving48": load_diving48, "in1k": load_image_folders}.get(task, load_kinetics)
        data = loader(root)
        if data.missing and not (data.train or data.val):
            raise VjepaError(f"{root}: none of the {data.missing} annotated videos were found",
                             f"check the {task} layout (vjepa probe --help)")
    if data.missing:
        data.notes.append(f"{data.missing} annotated videos not found on disk (skipped)")
    data.check(f"task {task}")
    return data

