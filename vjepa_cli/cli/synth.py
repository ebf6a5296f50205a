"""`vjepa synth`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Generate small synthetic videos with a manifest (motion, shapes, physics)."
EXAMPLES = """Example:\n\n  vjepa synth data/motion --task motion --videos 200"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa synth")


def register(app: typer.Typer) -> None:
    app.command(name="synth", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
