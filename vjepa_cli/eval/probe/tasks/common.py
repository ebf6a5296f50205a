"""What every probe task shares: the samples it yields (`TaskData`), what a loader is asked (`TaskRequest`), and
the helpers the dataset families use to read annotations and find their videos on disk."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vjepa_cli.errors import VjepaError


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


@dataclass(frozen=True)
class TaskRequest:
    """Everything a task loader may need; each family reads the fields its layout uses."""

    task: str  # the task name, e.g. "k400" (one family serves several names)
    data_root: Path | None = None  # dataset folder (folder-based families)
    train: Path | None = None  # training manifest (task `manifest`)
    val: Path | None = None  # validation manifest (task `manifest`)
    synth_cache: Path | None = None  # where synthetic tasks are generated (None: the default cache)
    synth_sizes: tuple[int, int] = (2000, 500)  # synthetic tasks: (training, validation) videos
    seed: int = 0  # synthetic tasks: generation seed
    progress: Callable[[int], None] | None = None  # synthetic tasks: progress(k), k videos generated so far

    def root(self) -> Path:
        """The dataset folder, refused in one line when not given or not there."""
        if self.data_root is None:
            raise VjepaError(f"task '{self.task}' needs --data-root", "the folder that holds the dataset")
        root = Path(self.data_root)
        if not root.is_dir():
            raise VjepaError(f"data root not found: {root}")
        return root


Loader = Callable[[TaskRequest], TaskData]


def rooted(read: Callable[[Path], TaskData]) -> Loader:
    """A loader for a family that reads a dataset folder: `read(root)`, refused when no annotated video is on disk."""

    def load(req: TaskRequest) -> TaskData:
        root = req.root()
        data = read(root)
        if data.missing and not (data.train or data.val):
            raise VjepaError(f"{root}: none of the {data.missing} annotated videos were found",
                             f"check the {req.task} layout (vjepa probe --help)")
        return data

    load.__doc__ = read.__doc__
    return load


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise VjepaError(f"cannot read {path}: {e}") from None


def first_file(root: Path, names: list[str], what: str) -> Path:
    """The first of `names` that exists in `root`; refused in one line naming them all."""
    for n in names:
        if (root / n).is_file():
            return root / n
    raise VjepaError(f"{root}: no {what} found", "expected one of: " + ", ".join(names))


def read_json_list(path: Path, keys: tuple[str, ...], layout: str) -> list[dict]:
    """A JSON list of objects with at least `keys` (checked on the first), else 'not the <layout> layout'."""
    data = read_json(path)
    if not isinstance(data, list) or (data and not (isinstance(data[0], dict) and set(keys) <= set(data[0]))):
        shown = ", ".join(f'"{k}"' for k in keys)
        raise VjepaError(f"{path}: not the {layout} layout", f"expected a JSON list of {{{shown}, ...}} objects")
    return data


def index_files(dirs: list[Path], exts: tuple[str, ...]) -> dict[str, str]:
    """stem -> path of every file with one of `exts` under `dirs` (recursively)."""
    out: dict[str, str] = {}
    for d in dirs:
        if d.is_dir():
            for p in d.rglob("*"):
                if p.suffix.lower() in exts and p.stem not in out:
                    out[p.stem] = str(p)
    return out


def resolve(entries: list[tuple[list[str], int]], index: dict[str, str]) -> tuple[list[tuple[str, int]], int]:
    """Keep the entries whose video exists (first matching stem); count the rest."""
    found, missing = [], 0
    for stems, label in entries:
        path = next((index[s] for s in stems if s in index), None)
        if path is None:
            missing += 1
        else:
            found.append((path, label))
    return found, missing


def split_data(entries: list[list[tuple[list[str], int]]], index: dict[str, str], classes: list[str]) -> TaskData:
    """`TaskData` of the (train, val) annotation entries whose videos are in `index`; the others are counted."""
    found, missing = [], 0
    for split in entries:
        kept, m = resolve(split, index)
        found.append(kept)
        missing += m
    return TaskData(found[0], found[1], classes, missing=missing)
