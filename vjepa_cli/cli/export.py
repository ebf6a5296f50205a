"""`vjepa export`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Export the EMA target encoder of a training run or checkpoint."
EXAMPLES = """Example:\n\n  vjepa export runs/vitb -o encoder.safetensors"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa export")


def register(app: typer.Typer) -> None:
    app.command(name="export", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
