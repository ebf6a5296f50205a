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
