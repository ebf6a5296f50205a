"""The decoders' own logging: quiet by default, back on with `vjepa -v` (`set_verbose(True)`).

Our errors already say what went wrong with a video, in one line; FFmpeg and decord would add their own
(`moov atom not found`, `video_reader.cc:83: ERROR opening ...`) for every attempt, in every DataLoader worker.
Three sources, three switches:
- PyAV's FFmpeg: PyAV's line-dropping callback, or FFmpeg's own printer at the warning level (PyAV's Python
  logging bridge stays off: it takes the GIL in FFmpeg's threads and changes the wording of errors);
- decord's bundled FFmpeg (a second copy of libavutil): `decord.logging.set_level`;
- decord's C++ `LOG(ERROR)` lines (dmlc logging, written to std::cerr with no level switch): file descriptor 2
  goes to /dev/null while a decord reader is constructed, the only call that logs this way.

The setting is per process and applied where `av` / `decord` are first imported through this module; forked
workers inherit it. Every media module imports the decoders through `import_av` / `import_decord`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

AV_LOG_QUIET, AV_LOG_WARNING = -8, 24  # FFmpeg's log levels (libavutil/log.h)
_verbose = False  # show the decoders' log lines (set by the CLI's -v)
_applied: set[str] = set()  # decoders whose level is set in this process
_fd_lock = (os.getpid(), threading.Lock())  # one redirection of fd 2 at a time (a new lock after a fork)


def set_verbose(verbose: bool) -> None:
    """Show (True) or hide (False, the default) FFmpeg's, PyAV's and decord's log lines in this process."""
    global _verbose
    _verbose = bool(verbose)
    _applied.clear()
    for name, apply in (("av", _apply_av), ("decord", _apply_decord)):
        if name in sys.modules:  # already imported: apply now; otherwise on first import
            apply(sys.modules[name])


def _level() -> int:
    return AV_LOG_WARNING if _verbose else AV_LOG_QUIET


def _apply_av(av: ModuleType) -> None:
    if _verbose:  # FFmpeg's own printer (no Python callback: no GIL in FFmpeg's threads, same error texts)
        av.logging.restore_default_callback()
    else:
        av.logging.set_level(None)  # PyAV's default: a callback that drops every line
    av.logging.set_libav_level(_level())
    _applied.add("av")


def _apply_decord(decord: ModuleType) -> None:
    import decord.logging

    decord.logging.set_level(_level())
    _applied.add("decord")


def import_av() -> ModuleType:
    """`import av`, with this process's log level applied."""
    import av

    if "av" not in _applied:
        _apply_av(av)
    return av


def import_decord() -> ModuleType:
    """`import decord`, with this process's log level applied (ImportError when it is not installed)."""
    import decord

    if "decord" not in _applied:
        _apply_decord(decord)
    return decord


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration, unless verbose (for C++ code that writes to
    std::cerr with no level switch). Other threads' stderr writes in that window are lost too, so keep it short."""
    global _fd_lock
    if _verbose:
        yield
        return
    if _fd_lock[0] != os.getpid():  # a forked worker: the parent's lock may have been copied while held
        _fd_lock = (os.getpid(), threading.Lock())
    with _fd_lock[1]:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (a daemon): nothing to hide
            saved = None
        if saved is None:
            yield
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
