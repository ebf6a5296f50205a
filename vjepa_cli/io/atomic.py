"""Atomic file writes: write to a temporary name beside the target, fsync, rename.

A crash or a failure mid-write leaves either the old file or no file, never a half-written one. Each write
gets its own temporary name (pid + random part, created exclusively), so two processes writing the same output
at once (two `vjepa extract` on one folder) never share a temporary file: each renames a complete file into
place and the last rename wins. A full disk (or quota) is one clear VjepaError naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from vjepa_cli.errors import VjepaError

_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def _temp_beside(path: Path, suffix: str) -> Path:
    """Create an empty, new file next to `path`. O_EXCL makes the name ours alone; mode 0o666 lets the umask
    decide the permissions, as for any file open() creates (no process-wide umask juggling, which would race
    with other threads creating files)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {path}")


def disk_full_error(e: OSError, path: str | Path) -> VjepaError | None:
    """`e` as the one-line error for a full disk or quota while writing `path`; None for other errors."""
    what = _FULL.get(e.errno)
    if what is None:
        return None
    return VjepaError(f"{what} writing {path}", hint="free some space or choose another -o")


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` (or an error it was raised from) is a full disk or quota: an OSError with ENOSPC / EDQUOT, or
    a library's error that carries the OS's text for them (safetensors reports "No space left on device (os
    error 28)" in a SafetensorError, not an OSError)."""
    texts = tuple(os.strerror(code) for code in _FULL)
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return True
        if any(t in str(seen) for t in texts):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path` atomically.

    Raises:
        VjepaError: the disk (or the user's quota) is full; `path` is then as it was and no temporary is left.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path, suffix or ".tmp")
        mode = stat.S_IMODE(os.stat(tmp).st_mode)  # what the umask gives a new file
        yield tmp
        os.chmod(tmp, mode)  # a writer may have made the file anew: safetensors' save_file creates it 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # a full disk may only show here (delayed allocation)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # persist the rename itself
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as e:
        full = disk_full_error(e, path)
        if full is None:
            raise
        raise full from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")  # not the locale's: manifests and recipes are read as UTF-8


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
