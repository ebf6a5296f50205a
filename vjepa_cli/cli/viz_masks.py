"""`vjepa viz-masks`: what a pretraining recipe's masks hide (see `vjepa_cli.infer.viz_masks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._options import JsonOpt, SetOpt, print_json

HELP = "Draw the masks a recipe asks the model to predict."
EXAMPLES = """Examples:\n\n  vjepa viz-masks recipes/tiny-cpu.yaml -o masks.png --samples 2\n\n  vjepa viz-masks vitl16 -o vitl-masks.png"""


def command(
    recipe: Annotated[str, typer.Argument(help="Pretraining recipe whose masks to draw: a YAML file, or a built-in "
                                               "recipe name (tiny-cpu, vitb, ...).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .png to write.", show_default=False)],
    video: Annotated[Path | None, typer.Option("--video", help="Draw on this video (default: a synthetic clip).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="How many batches' masks to draw.")] = 1,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Mask seed (default: the recipe's).",
                                             show_default=False)] = None,
    sets: SetOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Draw what a recipe's masks hide: context tokens as they are, targets red, dropped tokens dark."""
    from vjepa_cli.infer.viz_masks import run_viz_masks
    from vjepa_cli.log import err_console

    res = run_viz_masks(recipe, output, sets or [], video=video, samples=samples, seed=seed)
    if json_out:
        print_json(res)
    else:
        err_console().print(f"wrote {res['output']}: {res['masks']} mask pair(s) on a {res['grid']} token grid",
                            highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="viz-masks", help=HELP, epilog=EXAMPLES)(command)
