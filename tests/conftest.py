"""Shared fixtures: keep torch small and single-threaded-friendly, and a CLI runner that goes through
`main()` (so error formatting and exit codes are what a user sees)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models: one thread is faster than two fighting over a busy machine.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def run_cli(capsys):
    """Run `vjepa ARGS...` in-process through `vjepa_cli.cli.main` and return code/stdout/stderr."""
    from vjepa_cli.cli import main

    def run(*args: str) -> CliResult:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def pytest_terminal_summary(terminalreporter):
    """The fuzz tests' counts (cases tried, accepted/decoded, refused) per target, when any ran."""
    import sys

    fuzz = sys.modules.get("_fuzz")
    if fuzz is not None and fuzz.TALLY:
        terminalreporter.section("fuzz cases")
        for line in fuzz.summary_lines():
            terminalreporter.write_line(line)
