"""`vjepa probe`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Train and evaluate attentive probes on frozen features."
EXAMPLES = """Example:\n\n  vjepa probe --task synth-motion --model encoder.safetensors"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa probe")


def register(app: typer.Typer) -> None:
    app.command(name="probe", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
