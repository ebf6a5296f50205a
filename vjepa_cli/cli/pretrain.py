"""`vjepa pretrain`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

HELP = "Pretrain an encoder and predictor with V-JEPA from a YAML recipe."
EXAMPLES = """Example:\n\n  vjepa pretrain recipes/vitb.yaml --set optim.lr=3e-4 -o runs/vitb"""


def command(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa pretrain")


def register(app: typer.Typer) -> None:
    app.command(name="pretrain", help=HELP, epilog=EXAMPLES, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
