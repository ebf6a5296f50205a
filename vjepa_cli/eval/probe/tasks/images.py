"""Image classification folders (ImageNet-1k `in1k`, or any dataset in the same layout).

Layout: DIR/train/<class>/* and DIR/val/<class>/* (or DIR/validation); each image is repeated to the clip length.
"""

from __future__ import annotations

from pathlib import Path

from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.tasks.common import TaskData

IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def load_image_folders(root: Path) -> TaskData:
    """Classes are the training subfolders (sorted); every validation class must have a training folder."""
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
