"""`vjepa extract`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Extract frozen-encoder features from videos."
EXAMPLES = """Example:\n\n  vjepa extract video.mp4 -o feats.safetensors --model encoder.safetensors"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa extract")


def register(app: typer.Typer) -> None:
    app.command(name="extract", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
