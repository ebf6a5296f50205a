"""`vjepa synth`: write built-in synthetic videos (mp4/H.264) with train/val manifests and labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._options import JobsOpt, JsonOpt, OldWorkersOpt, either

HELP = (
    "Generate small synthetic videos with manifests, to try every command without downloaded data. "
    "Tasks: motion (label = direction x speed of the large objects; needs time), shapes (shape x colour; "
    "one frame suffices), physics (balls in a box; label = ball count, or with --impossible "
    "possible/impossible pairs where a ball vanishes, teleports or passes through the bar). "
    "Same settings and seed give byte-identical files."
)
EXAMPLES = """Examples:\n\n  vjepa synth data/motion --task motion --videos 512\n\n  vjepa synth data/physics --task physics --impossible --videos 200 --frames 32"""


def command(
    out_dir: Annotated[Path | None, typer.Argument(help="Folder to write videos/, train.csv, val.csv, labels.json, "
                                                        "synth.json (or give it with -o).", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The same folder, as an option.",
                                                show_default=False)] = None,
    task: Annotated[Literal["motion", "shapes", "physics"], typer.Option("--task", "-t", help="What the videos show.")] = "motion",
    videos: Annotated[int, typer.Option("--videos", "-n", help="Number of videos (train + val).")] = 512,
    frames: Annotated[int, typer.Option("--frames", help="Frames per video.")] = 16,
    fps: Annotated[int, typer.Option("--fps", help="Frame rate written in the files.")] = 8,
    size: Annotated[int, typer.Option("--size", help="Frame height = width in pixels (even).")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of videos in val.csv.")] = 0.2,
    impossible: Annotated[bool, typer.Option("--impossible", help="physics: possible/impossible pairs.")] = False,
    directions: Annotated[int, typer.Option("--directions", help="motion: directions (classes = directions x speeds).")] = 8,
    speeds: Annotated[int, typer.Option("--speeds", help="motion: speeds.")] = 2,
    distractors: Annotated[int, typer.Option("--distractors", help="motion: small objects moving otherwise (0 = easier).")] = 1,
    jobs: JobsOpt = None,
    workers_old: OldWorkersOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.data.synth import generate_synth
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.log import console, progress

    workers = either(jobs, workers_old, "--jobs", "--workers") or 1
    if out_dir is None and output is None:
        raise VjepaError("no output folder given", hint="e.g. vjepa synth data/motion (or -o data/motion)")
    if out_dir is not None and output is not None and out_dir != output:
        raise VjepaError("two output folders given: OUT_DIR and -o/--output", hint="give one of them")
    out_dir = out_dir or output

    with progress(transient=True) as bar:
        task_id = bar.add_task(f"synth {task}", total=videos, info="")
        res = generate_synth(task, out_dir, n=videos, frames=frames, size=size, fps=fps, seed=seed,
                             val_fraction=val_fraction, impossible=impossible, directions=directions,
                             speeds=speeds, distractors=distractors, workers=workers,
                             progress=lambda k: bar.update(task_id, completed=k))
    if json_out:
        typer.echo(json.dumps({"out_dir": str(res.out_dir), "train": str(res.train_manifest),
                               "val": str(res.val_manifest), "labels": str(res.labels_path),
                               "num_train": res.num_train, "num_val": res.num_val,
                               "num_classes": len(res.class_names)}))
        return
    console().print(f"wrote {res.num_train} train + {res.num_val} val videos ({task}, "
                    f"{len(res.class_names)} classes) to {res.out_dir}", highlight=False)
    console().print(f"manifests: {res.train_manifest}  {res.val_manifest}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="synth", help=HELP, epilog=EXAMPLES)(command)
