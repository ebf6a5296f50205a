"""The one error type users see: a message naming the problem and what to do about it.

Library code raises `VjepaError` for anything a user can cause (missing file, bad YAML key, wrong
checkpoint, corrupt video); the CLI prints it as a single line on stderr and exits non-zero, with no
traceback. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class VjepaError(Exception):
    """A user-facing failure. `str(err)` is the complete one-line message."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class NotImplementedYet(VjepaError):
    """A command that exists in the CLI map but whose capability is not built yet."""

    exit_code = 3

    def __init__(self, what: str):
        super().__init__(f"'{what}' is not implemented yet")


WORKER_HINT = "it was killed from outside (out of memory?): lower the number of workers or the batch size"


def resource_error(e: BaseException, worker_hint: str = WORKER_HINT) -> VjepaError | None:
    """`e` as a one-line `VjepaError` when the machine ran out of something the user can change (a DataLoader
    worker killed, e.g. by the OOM killer; memory), else None: other errors are not disguised."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "DataLoader worker" in text:
        return VjepaError(f"a data loader worker died: {text}", hint=worker_hint)
    if isinstance(e, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text:
        return VjepaError(f"out of memory: {text[:200]}", hint="lower the batch size, the clip length or the resolution")
    return None


def one_line(text: object, limit: int = 160) -> str:
    """`text` fit for a one-line message: control characters (newlines...) escaped, a long text cut in the middle."""
    text = str(text)
    if not text.isprintable():
        text = repr(text)[1:-1]
    if len(text) > limit:
        text = f"{text[:limit * 2 // 3]}...{text[-(limit // 3):]}"
    return text
