"""Console output for the CLI: rich consoles on stdout/stderr, progress bars, and the logging setup.

Library code never prints: it takes an optional `progress` callback or uses `logging`. The CLI creates
consoles here and renders results.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import cache

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _console(stderr: bool) -> Console:
    """A terminal keeps rich's wrapping; a pipe or a file gets whole lines (no path split at 80 columns)."""
    c = Console(stderr=stderr)
    if c.is_terminal:
        return c
    return Console(stderr=stderr, soft_wrap=True, width=max(c.width, 1000))


@cache
def console() -> Console:
    """Results (stdout)."""
    return _console(False)


@cache
def err_console() -> Console:
    """Progress, logs, warnings and errors (stderr)."""
    return _console(True)


_quiet = False
_level_before_quiet: int | None = None


def set_quiet(quiet: bool) -> None:
    """`vjepa -q`: no progress bars and no info lines, only warnings, errors and the results."""
    global _quiet, _level_before_quiet
    root = logging.getLogger()
    if quiet and not _quiet:
        _level_before_quiet = root.level
        root.setLevel(logging.WARNING)
    elif not quiet and _quiet and _level_before_quiet is not None:
        root.setLevel(_level_before_quiet)
    _quiet = quiet


def setup_logging(verbose: bool = False) -> None:
    level = logging.WARNING if _quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(message)s", datefmt="[%X]",
        handlers=[RichHandler(console=err_console(), show_path=False, rich_tracebacks=False)],
        force=True,
    )


def progress(transient: bool = False, disable: bool | None = None) -> Progress:
    """A rich progress bar on stderr (so stdout stays clean for --json and pipelines)."""
    if disable is None:
        disable = _quiet or (not sys.stderr.isatty() and os.environ.get("VJEPA_PROGRESS") != "1")
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console(),
        transient=transient,
        disable=disable,
    )
