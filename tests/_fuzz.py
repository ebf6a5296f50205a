"""Shared by the fuzz tests (`test_fuzz_*.py`): deterministic hypothesis settings, the one-line refusal check,
and per-target tallies that `conftest.py` prints at the end of the run (tried / accepted / refused)."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import HealthCheck, Phase, settings

from vjepa_cli.errors import VjepaError

# CI must see the same cases every run: derandomize draws from a fixed seed, and no example database carries
# failures over from one run to the next (a found bug is pinned with @example instead). No `explain` phase: on a
# failure it re-runs the test many times to point at lines, which can take minutes of CI time.
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])



def fuzz(max_examples: int) -> settings:
    """`FUZZ` with an explicit number of cases (the suite's time budget is set here, test by test)."""
    return settings(FUZZ, max_examples=max_examples)


TALLY: dict[str, Counter] = defaultdict(Counter)


def tally(target: str, outcome: str) -> None:
    """Count one case of `target` ("accepted", "refused", "decoded", ...)."""
    TALLY[target]["tried"] += 1
    TALLY[target][outcome] += 1


def assert_one_line(e: BaseException) -> str:
    """`e` is a VjepaError whose message is one non-empty line, as the CLI prints it."""
    assert isinstance(e, VjepaError), f"{type(e).__name__} instead of a VjepaError: {e}"
    text = str(e)
    assert text.strip() and "\n" not in text and "\r" not in text, repr(text)
    assert "Traceback" not in text, text
    return text


def summary_lines() -> list[str]:
    lines = []
    for target in sorted(TALLY):
        c = TALLY[target]
        rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "tried")
        lines.append(f"{target}: tried {c['tried']}, {rest}")
    return lines
