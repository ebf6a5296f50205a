"""`vjepa convert`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Convert official V-JEPA or transformers weights to a vjepa model file."
EXAMPLES = """Example:\n\n  vjepa convert vitl.pth.tar -o vitl.safetensors"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa convert")


def register(app: typer.Typer) -> None:
    app.command(name="convert", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
