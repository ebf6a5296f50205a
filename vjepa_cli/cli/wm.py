"""`vjepa wm ...`: world model commands, not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

app = typer.Typer(no_args_is_help=True)
_CTX = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(help="Record episodes from a simulated environment.", context_settings=_CTX,
             epilog="Example:\n\n  vjepa wm collect --env reach2d --episodes 200 -o episodes/")
def collect(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa wm collect")


@app.command(help="Train an action-conditioned predictor on episodes.", context_settings=_CTX,
             epilog="Example:\n\n  vjepa wm train recipes/wm/reach2d.yaml")
def train(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa wm train")


@app.command(help="Plan actions from a start image toward a goal image.", context_settings=_CTX,
             epilog="Example:\n\n  vjepa wm plan --model wm.safetensors --start s.png --goal g.png")
def plan(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa wm plan")


@app.command(name="eval", help="Closed-loop planning in a simulator: success rate against baselines.",
             context_settings=_CTX, epilog="Example:\n\n  vjepa wm eval --env reach2d --episodes 50 --model wm.safetensors")
def eval_(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa wm eval")
