"""`vjepa predict`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Predict future features of a video with the predictor."
EXAMPLES = """Example:\n\n  vjepa predict video.mp4 --model model.safetensors -o pred.safetensors"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa predict")


def register(app: typer.Typer) -> None:
    app.command(name="predict", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
