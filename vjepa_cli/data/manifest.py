"""Manifests: the list of videos a dataset reads.

Two formats are read everywhere a manifest is asked for:

- ours: CSV with the header `path,label,num_frames,fps,width,height`; only `path` is required, unknown
  values are left empty (label empty = unlabelled, read as -1);
- the official V-JEPA one: headerless `path label` lines, space separated (the label is the last
  field, so paths may contain spaces); `path::label` is also accepted.

Relative paths resolve against the manifest's folder. `labels.json` maps class name -> index.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import write_text_atomic

HEADER = ("path", "label", "num_frames", "fps", "width", "height")


@dataclass(frozen=True)
class ManifestRow:
    """One video. `path` is absolute after `read_manifest`; unknown fields are None; label -1 = none."""

    path: str
    label: int = -1
    num_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None


_INT64 = 2**63
_LINE_END = re.compile(r"\r\n|\n|\r")  # what ends a line of a text file; not the \x85 or \u2028 of splitlines()


def _show(v: str, limit: int = 80) -> str:
    """A value as a one-line message quotes it: repr (control characters escaped), long ones shortened."""
    r = repr(v)
    return r if len(r) <= limit else f"{r[:limit - 12]}...{r[-9:]}"


def _resolve(p: str, root: Path, where: str) -> str:
    if "\x00" in p:
        raise VjepaError(f"{where}: the path {_show(p)} contains a NUL character")
    q = Path(p).expanduser()
    try:
        return str(q if q.is_absolute() else (root / q).resolve())
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on Python < 3.13
        raise VjepaError(f"{where}: cannot resolve the path {_show(p)}: {e}") from None


def _opt(v: str, kind, where: str, signed: bool = False):
    """An optional number of a row: '' -> None; ints are whole (read exactly, not through a float) and fit
    64 bits, floats are finite; counts (all but the label) are >= 0."""
    v = v.strip()
    if v == "":
        return None
    try:
        x = float(v)
    except ValueError:
        raise VjepaError(f"{where}: {_show(v)} is not a number") from None
    if kind is int:
        try:
            x = int(v)
        except ValueError:  # "48.0", "1e3": whole numbers written as floats
            if not (math.isfinite(x) and x.is_integer()):
                raise VjepaError(f"{where}: {_show(v)} is not a whole number") from None
            x = int(x)
        if not -_INT64 <= x < _INT64:
            raise VjepaError(f"{where}: {_show(v)} is out of range")
    elif not math.isfinite(x):
        raise VjepaError(f"{where}: {_show(v)} is not a finite number")
    if x < 0 and not signed:
        raise VjepaError(f"{where}: {_show(v)} is negative")
    return x


def _read_ours(text: str, root: Path, name: str) -> list[ManifestRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""))  # the csv module handles line ends itself
    rows = []
    try:
        unknown = set(reader.fieldnames or ()) - set(HEADER)
        if unknown:
            raise VjepaError(f"{name}: unknown manifest column(s) {sorted(map(_show, unknown))}",
                             "expected " + ",".join(HEADER))
        for r in reader:
            where = f"{name} line {reader.line_num}"
            if not (r.get("path") or "").strip():
                raise VjepaError(f"{where}: empty path")
            label = _opt(r.get("label") or "", int, where, signed=True)
            rows.append(ManifestRow(
                path=_resolve(r["path"].strip(), root, where),
                label=-1 if label is None else label,
                num_frames=_opt(r.get("num_frames") or "", int, where),
                fps=_opt(r.get("fps") or "", float, where),
                width=_opt(r.get("width") or "", int, where),
                height=_opt(r.get("height") or "", int, where),
            ))
    except csv.Error as e:  # a quote never closed, a field over csv's size limit
        raise VjepaError(f"{name} line {reader.line_num}: not a readable CSV: {e}") from None
    return rows


def parse_official_line(line: str) -> tuple[str, int] | None:
    """`"/a/b.mp4 3"` or `"/a/b.mp4::3"` -> ("/a/b.mp4", 3); None when the last field is not an integer.
    A path may hold spaces and `::` itself: the label is what follows the last separator."""
    line = line.strip()
    for sep in ("::", None) if "::" in line else (None,):
        parts = line.rsplit(sep, 1)
        if len(parts) != 2 or not parts[0].strip():
            continue
        try:
            return parts[0].strip(), int(parts[1])
        except ValueError:
            continue
    return None


def _read_official(lines: list[tuple[int, str]], root: Path, name: str) -> list[ManifestRow]:
    rows = []
    for i, line in lines:
        parsed = parse_official_line(line)
        if parsed is None:
            raise VjepaError(f"{name} line {i}: expected 'path label' (label an integer), got {_show(line.strip())}",
                             "or use a CSV with the header " + ",".join(HEADER))
        if not -_INT64 <= parsed[1] < _INT64:
            raise VjepaError(f"{name} line {i}: the label {parsed[1]} is out of range")
        rows.append(ManifestRow(path=_resolve(parsed[0], root, f"{name} line {i}"), label=parsed[1]))
    return rows


def is_our_header(first_line: str) -> bool:
    try:
        first = next(csv.reader([first_line.strip().lstrip("\ufeff")]), [""])
    except csv.Error:
        return False
    return bool(first) and first[0].strip() == "path"  # also when a CSV writer quoted it: "path",...


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a manifest in either format (detected from the first line). Raises `VjepaError`."""
    path = Path(path)
    if not path.is_file():
        raise VjepaError(f"manifest not found: {path}", "create one with `vjepa preprocess` or `vjepa synth`")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # no newline translation: a quoted CSV field keeps its \r
    except (OSError, UnicodeDecodeError) as e:
        raise VjepaError(f"cannot read manifest {path}: {e}") from None
    lines = [(i, ln) for i, ln in enumerate(_LINE_END.split(text), start=1) if ln.strip()]
    if not lines:
        raise VjepaError(f"manifest {path} is empty")
    root = path.resolve().parent
    rows = _read_ours(text, root, str(path)) if is_our_header(lines[0][1]) else _read_official(lines, root, str(path))
    if not rows:
        raise VjepaError(f"manifest {path} lists no videos")
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _csv_line(values) -> str:
    """One CSV row ending in \\n. Written with a \\r\\n terminator and then trimmed, because the csv module
    quotes a field only for the characters of its terminator: with "\\n" alone, a path holding \\r would be
    written bare and read back as two rows."""
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()[:-2] + "\n"


def write_manifest(path: str | Path, rows: list[ManifestRow], relative: bool = True) -> Path:
    """Write our CSV atomically. Row paths that are not absolute are taken relative to the current
    directory (as everywhere else in memory). With `relative`, paths under the manifest's folder are stored
    relative to it (the folder can be moved); others stay absolute. Label -1 is written empty."""
    path = Path(path)
    root = path.resolve().parent
    lines = [_csv_line(HEADER)]
    for r in rows:
        try:
            r.path.encode("utf-8")
        except UnicodeEncodeError:  # a file name in another encoding, as os.fsdecode gives it
            raise VjepaError(f"cannot list {_show(r.path)} in {path}: the file name is not valid UTF-8",
                             "rename the file to a UTF-8 name") from None
        p = Path(os.path.abspath(r.path))  # a manifest is read back relative to its own folder, not to this cwd
        if relative and p.is_absolute() and p.is_relative_to(root):
            p = p.relative_to(root)
        lines.append(_csv_line([p.as_posix(), "" if r.label < 0 else r.label, _fmt(r.num_frames), _fmt(r.fps),
                                _fmt(r.width), _fmt(r.height)]))
    write_text_atomic(path, "".join(lines))
    return path


def read_labels(path: str | Path) -> dict[str, int]:
    """labels.json: {class name: index} (SSv2's string indices are accepted)."""
    try:
        data = json.loads(Path(path).read_text())
        return {str(k): int(v) for k, v in data.items()}
    except FileNotFoundError:
        raise VjepaError(f"labels file not found: {path}") from None
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise VjepaError(f"{path}: not a JSON mapping of class name to index ({e})") from None


def write_labels(path: str | Path, labels: dict[str, int]) -> Path:
    """Write {class name: index} sorted by index, atomically."""
    ordered = dict(sorted(labels.items(), key=lambda kv: kv[1]))
    write_text_atomic(path, json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")
    return Path(path)


def class_names(labels: dict[str, int]) -> list[str]:
    """Index -> name list (gaps filled with the index as a string)."""
    n = max(labels.values(), default=-1) + 1
    names = [str(i) for i in range(n)]
    for k, v in labels.items():
        names[v] = k
    return names
