"""Helpers for the training tests: what a folder holds, byte for byte, and a disk that fills up."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def folder_snapshot(root: Path) -> dict[str, tuple]:
    """Every path below `root` (and `root` itself as "."): a file's bytes and mtime, a folder's mtime."""
    out: dict[str, tuple] = {".": ("dir", os.stat(root).st_mtime_ns)}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        st = os.stat(p, follow_symlinks=False)
        out[rel] = ("dir", st.st_mtime_ns) if p.is_dir() else (p.read_bytes(), st.st_mtime_ns)
    return out


def fill_disk_at(call: int, monkeypatch) -> list[int]:
    """Make the `call`-th safetensors write (1-based) fail as a full disk does: part of the file written, then
    ENOSPC. Returns the running count of writes."""
    import vjepa_cli.io.tensors as T

    real, calls = T.save_file, [0]

    def save_file(tensors, path, metadata=None):
        calls[0] += 1
        if calls[0] == call:
            Path(path).write_bytes(b"\0" * 64)  # what got out before the disk filled
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(T, "save_file", save_file)
    return calls
