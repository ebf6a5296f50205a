"""`vjepa demo`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Run the whole pipeline on built-in synthetic data and write a report."
EXAMPLES = """Example:\n\n  vjepa demo --out demo-run"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa demo")


def register(app: typer.Typer) -> None:
    app.command(name="demo", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
