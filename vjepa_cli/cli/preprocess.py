"""`vjepa preprocess`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Scan videos into a manifest CSV (and optionally re-encode them)."
EXAMPLES = """Example:\n\n  vjepa preprocess videos/ -o train.csv --workers 8"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa preprocess")


def register(app: typer.Typer) -> None:
    app.command(name="preprocess", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
