"""Where videos come from: the datasets of a recipe (`resolve_datasets`, manifests and cached synthetic sets)
and what `vjepa preprocess` can read as SRC, turned into (path, label) entries.

- a folder of videos: label = name of the first sub-folder under SRC (none for files directly in SRC);
- a file listing one path per line, or `-` for stdin;
- a manifest (our CSV or the official `path label` lines);
- a Something-Something v2 annotation JSON (`train.json` / `validation.json`: `id`, `template`) with a
  `labels.json` of template -> index; videos are `<id>.webm` in `--videos DIR`;
- a Kinetics CSV (`label,youtube_id,time_start,time_end,split`); videos are
  `<youtube_id>_<start:06d>_<end:06d>.mp4` in `--videos DIR` (or `DIR/<label>/`, `DIR/<split>/<label>/`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from vjepa_cli.config.data import DataConfig
from vjepa_cli.data.manifest import _read_ours, is_our_header, parse_official_line, read_labels, read_manifest
from vjepa_cli.data.synth import ensure_synth
from vjepa_cli.errors import VjepaError
from vjepa_cli.runtime import VIDEO_EXTS


@dataclass
class Source:
    """Entries found in SRC: `label` is a class name (str), an index (int) or None."""

    kind: str  # folder | list | manifest | official | ssv2 | kinetics
    entries: list[tuple[str, str | int | None]]
    labels: dict[str, int] | None = None  # a fixed name -> index map that came with SRC (SSv2)
    root: Path | None = None  # common folder of the videos (for --out-dir layout)


def _abs(p: str, root: Path) -> str:
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else (root / q).absolute())


def from_folder(src: Path) -> Source:
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file())
    if not files:
        raise VjepaError(f"no video files in {src}", "looked for " + ", ".join(sorted(VIDEO_EXTS)))
    entries = []
    for f in files:
        rel = f.relative_to(src)
        entries.append((str(f.absolute()), rel.parts[0] if len(rel.parts) > 1 else None))
    return Source("folder", entries, root=src.absolute())


def _from_lines(lines: list[str], root: Path, name: str) -> Source:
    body = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        raise VjepaError(f"{name} lists no videos")
    if is_our_header(body[0]):
        rows = _read_ours("\n".join(body), root, name)
        return Source("manifest", [(r.path, r.label if r.label >= 0 else None) for r in rows])
    parsed = [parse_official_line(ln) for ln in body]
    if all(p is not None for p in parsed):
        return Source("official", [(_abs(p, root), lab) for p, lab in parsed])
    return Source("list", [(_abs(ln, root), None) for ln in body])


def from_kinetics(text: str, csv_path: Path, videos: Path | None) -> Source:
    vdir = videos or csv_path.parent
    reader = csv.DictReader(io.StringIO(text))
    need = {"label", "youtube_id", "time_start", "time_end"}
    if not need <= set(reader.fieldnames or ()):
        raise VjepaError(f"{csv_path}: a Kinetics CSV needs the columns {sorted(need)}")
    entries = []
    for i, r in enumerate(reader, start=2):
        try:
            name = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}.mp4"
        except (TypeError, ValueError):
            raise VjepaError(f"{csv_path} line {i}: time_start/time_end must be numbers") from None
        cands = [vdir / name, vdir / r["label"] / name]
        if r.get("split"):
            cands.append(vdir / r["split"] / r["label"] / name)
        path = next((c for c in cands if c.exists()), cands[0])
        entries.append((str(path.absolute()), r["label"]))
    return Source("kinetics", entries, root=vdir.absolute())


def from_ssv2(json_path: Path, videos: Path | None, labels: Path | None) -> Source:
    try:
        items = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise VjepaError(f"cannot read {json_path}: {e}") from None
    if not isinstance(items, list) or not all(isinstance(x, dict) and "id" in x for x in items):
        raise VjepaError(f"{json_path}: not a Something-Something v2 annotation list (entries need an 'id')")
    labels_path = labels or json_path.parent / "labels.json"
    has_templates = any("template" in x for x in items)
    names = read_labels(labels_path) if has_templates or labels_path.exists() else None
    if has_templates and names is None:
        raise VjepaError(f"{json_path}: needs {labels_path}", "pass --labels PATH to SSv2's labels.json")
    vdir = videos or json_path.parent
    entries = []
    for x in items:
        label = None
        if "template" in x:
            key = x["template"].replace("[", "").replace("]", "")
            if key not in names:
                raise VjepaError(f"{json_path}: template {x['template']!r} is not in {labels_path}")
            label = names[key]
        entries.append((str((vdir / f"{x['id']}.webm").absolute()), label))
    return Source("ssv2", entries, labels=names, root=vdir.absolute())


def read_source(src: str, videos: str | Path | None = None, labels: str | Path | None = None,
                stdin_text: str | None = None) -> Source:
    """Find the videos named by SRC (see the module docstring). Raises `VjepaError`."""
    vdir = Path(videos).expanduser() if videos else None
    if vdir is not None and not vdir.is_dir():
        raise VjepaError(f"--videos {vdir} is not a folder")
    if src == "-":
        return _from_lines((stdin_text or "").splitlines(), Path.cwd(), "stdin")
    p = Path(src).expanduser()
    if not p.exists():
        raise VjepaError(f"SRC not found: {p}", "give a folder of videos, a list/manifest/CSV file, a JSON, or -")
    if p.is_dir():
        return from_folder(p)
    if p.suffix.lower() == ".json":
        return from_ssv2(p, vdir, Path(labels) if labels else None)
    if p.suffix.lower() in VIDEO_EXTS:
        return Source("list", [(str(p.absolute()), None)], root=p.parent.absolute())
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise VjepaError(f"cannot read {p} as text: {e}", "SRC must be a folder, a text/CSV/JSON file or -") from None
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if "youtube_id" in first.split(","):
        return from_kinetics(text, p, vdir)
    if is_our_header(first):
        return Source("manifest", [(r.path, r.label if r.label >= 0 else None) for r in read_manifest(p)])
    base = vdir or p.parent
    return _from_lines(text.splitlines(), base, str(p))


def resolve_datasets(cfg: DataConfig, split: str | None = None) -> tuple[list[Path], list[float]]:
    """Manifest paths and weights of every dataset in `cfg`; synth datasets are generated/cached first.

    `split` picks train.csv / val.csv of synth datasets (default: each spec's own `split`)."""
    specs = cfg.dataset_specs()
    if not specs:
        raise VjepaError("no datasets configured", "set data.datasets to manifests, or data.synth")
    manifests = []
    for s in specs:
        if s.path is not None:
            manifests.append(Path(s.path).expanduser())
            continue
        res = ensure_synth(s.synth, cfg.cache_dir)
        manifests.append(res.val_manifest if (split or s.synth.split) == "val" else res.train_manifest)
    return manifests, [s.weight for s in specs]
