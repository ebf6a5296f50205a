"""A run's output folder for the life of one run: locked against a second run on it, and left as it was found
when the run fails before its first step; which checkpoint a run continues from (`resume_point`); a full disk
as one clear line (`disk_full`).

The lock is `fcntl.flock` on `<folder>/.vjepa.lock`: the kernel drops it when the process ends, however it ends
(a crash or SIGKILL included), so a dead run never leaves a stale lock; the file itself is removed on exit and
nothing looks for it, so it never makes a folder look like a run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import is_disk_full

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs are not locked
    fcntl = None

LOCK = ".vjepa.lock"
class RunDir:
    """The output folder of one training run, as a context manager entered by every process (only the main
    one touches the folder).

    On entry the folder is created if needed and locked; a folder another live run holds is refused with one
    line. Until `commit()` (the trainer calls it after the run's first step) the run only creates new files
    in it, and if the run fails before that, what it created goes again: the whole folder when the run made
    it (with any parent folders it made), else every path that was not there before, the folders' times put
    back (so a failed start, or a failed `--resume`, leaves a run folder exactly as it was). After `commit()`
    the folder holds a run and is kept, whatever happens.
    """

    def __init__(self, path: str | Path, main: bool = True):
        self.path, self.main = Path(path), main
        self.committed = False
        self._fd: int | None = None
        self._existed = False
        self._made: Path | None = None  # the topmost folder this run created (the run folder or a parent)
        self._before: set[str] = set()
        self._times: dict[str, tuple[int, int]] = {}  # (atime, mtime) of each folder that was there, "." the root

    def __enter__(self) -> RunDir:
        if not self.main:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise VjepaError(f"{self.path} is a file, not a folder", hint="choose another -o/--output folder")
        self._existed = self.path.exists()
        if self._existed:
            self._times["."] = _times(self.path)
        else:
            self._made = self.path.absolute()
            while not self._made.parent.exists():
                self._made = self._made.parent
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = _lock(self.path / LOCK)
        except BaseException:  # refused: the folder is another run's, touch nothing (but an empty one we made)
            if not self._existed:
                with contextlib.suppress(OSError):
                    self.path.rmdir()
            raise
        if self._existed:  # listed under the lock: no other run changes it from here on
            self._before = _listing(self.path) - {LOCK}
            self._times.update({rel: _times(self.path / rel) for rel in self._before
                                if (self.path / rel).is_dir() and not (self.path / rel).is_symlink()})
        return self

    def commit(self) -> None:
        """The run has done a step: from now on the folder holds it and is kept."""
        self.committed = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.main:
            return
        try:
            if kind is not None and not self.committed:
                self._undo()
        finally:
            self._unlock()

    def _undo(self) -> None:
        """Remove what this run created (the lock file included)."""
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            return
        gone: list[str] = []
        for rel in sorted(_listing(self.path) - self._before):  # a folder sorts before what is inside it
            if any(rel.startswith(g + os.sep) for g in gone):
                continue
            p = self.path / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(rel)
        for rel, times in self._times.items():  # what was removed from a folder changed its times
            with contextlib.suppress(OSError):
                os.utime(self.path / rel, ns=times)

    def _unlock(self) -> None:
        if self._fd is None:
            return
        if self.path.is_dir():  # unlink while still holding it: a waiting opener then sees a removed file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / LOCK)
        os.close(self._fd)
        self._fd = None


def _listing(root: Path) -> set[str]:
    """Every path below `root`, relative to it (links not followed)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            out.add(name if rel == "." else os.path.join(rel, name))
    return out


def _times(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_atime_ns, st.st_mtime_ns


def _lock(path: Path) -> int | None:
    """Open and `flock` `path` without waiting; returns the open descriptor (the lock lives as long as it).

    A lock file removed by the run that held it, between our open and our lock, is no lock: try again on the
    new file. Another run holding it is a VjepaError naming its process.
    """
    if fcntl is None:
        return None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise VjepaError(f"{path.parent} is in use by another run (process {holder})",
                             hint="wait for it to end, or choose another -o/--output folder") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


class CheckpointStore(Protocol):
    """Where a run's checkpoints go (`vjepa_cli.io.checkpoint.StepCheckpoints` or `SingleCheckpoint`)."""

    dir: Path

    def path(self, step: int) -> Path: ...
    def latest(self) -> Path | None: ...
    def any(self) -> bool: ...
    def saved(self, path: Path) -> None: ...


def resume_point(store: CheckpointStore, out: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from: the latest with `resume` (there must be one); None for a new run,
    which must not start over a folder that holds one."""
    latest = store.latest()
    if resume:
        if latest is None:
            raise VjepaError(f"nothing to resume: {out} holds no checkpoint",
                             hint="start without --resume, or point -o/--output at the run to continue")
        return latest
    if store.any():
        raise VjepaError(f"{out} already holds a run", hint="add --resume to continue it, or choose another -o/--output folder")
    return None


def disk_full(path: str | Path, previous: Path | None) -> VjepaError:
    """The one line a run ends with when the disk is full: what could not be written, and what is safe."""
    if previous is None:
        return VjepaError(f"no space left on the device writing {path}",
                          hint="free space or choose an -o/--output folder on a disk with room")
    return VjepaError(f"no space left on the device writing {path}; the previous checkpoint {previous} is intact",
                      hint="free space or move the run to a disk with room, then continue it with --resume")


@contextlib.contextmanager
def disk_full_is_clear(path: Path, previous: Path | None) -> Iterator[None]:
    """Turn a full disk while writing `path` (see `is_disk_full`) into `disk_full`'s one line."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise disk_full(path, previous) from None
