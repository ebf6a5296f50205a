"""`vjepa viz`, `vjepa viz-masks`, `vjepa surprise`: not built yet."""

from __future__ import annotations

import typer

from vjepa_cli.errors import NotImplementedYet

_CTX = {"allow_extra_args": True, "ignore_unknown_options": True}


def viz(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa viz")


def viz_masks(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa viz-masks")


def surprise(ctx: typer.Context) -> None:
    raise NotImplementedYet("vjepa surprise")


def register(app: typer.Typer) -> None:
    app.command(name="surprise", help="Score per-time-step surprise of a video.",
                epilog="Example:\n\n  vjepa surprise video.mp4 --model model.safetensors", context_settings=_CTX)(surprise)
    app.command(name="viz", help="Colour patch features by their first 3 principal components.",
                epilog="Example:\n\n  vjepa viz video.mp4 --model encoder.safetensors -o pca.mp4", context_settings=_CTX)(viz)
    app.command(name="viz-masks", help="Draw the masks a recipe asks the model to predict.",
                epilog="Example:\n\n  vjepa viz-masks recipes/vitb.yaml -o masks.png", context_settings=_CTX)(viz_masks)
