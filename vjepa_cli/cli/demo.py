"""`vjepa demo`: the whole pipeline on built-in synthetic data (see `vjepa_cli.demo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._options import DeviceOpt, JsonOpt, TrainDtype

HELP = "Run the whole pipeline on built-in synthetic data and write a report (pretrained vs random init)."
EXAMPLES = """Generates synthetic videos, pretrains a tiny V-JEPA (recipe tiny-cpu), exports the EMA encoder,
extracts features, probes synth-motion with the pretrained and the random-initialised encoder, scores
surprise on possible vs impossible physics videos, and writes DIR/report.md with a results table and pictures.
About 12 minutes on 2 CPU cores (7 of them pretraining); --quick takes under a minute.\n\n
Examples:\n\n
  vjepa demo -o demo-run\n\n
  vjepa demo -o demo-run --minutes 30\n\n
  vjepa demo --quick --out /tmp/demo --json"""


def command(
    out: Annotated[Path, typer.Option("--output", "-o", help="Output folder (must be new or empty).")] = Path("vjepa-demo"),
    out_old: Annotated[Path | None, typer.Option("--out", hidden=True)] = None,
    minutes: Annotated[float | None, typer.Option("--minutes", help="Fit the motion pretraining into about half of N minutes, from a measured step time (default: the recipe's fixed step count, so results do not depend on machine load).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Pretraining steps (overrides --minutes and the recipe).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Tiny sizes (about a minute): shows the pipeline works, not that it learns.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Pretraining seed; the random baseline is the init it builds.")] = 0,
    device: DeviceOpt = None,
    dtype: Annotated[TrainDtype | None, typer.Option(
        "--dtype", help="Autocast precision of the two pretraining runs (auto: bf16 on CUDA, fp32 on CPU); the "
                        "other stages run in fp32.", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.cli._options import either
    from vjepa_cli.demo import DemoConfig, run_demo
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.log import console, progress

    out = either(None, out_old, "--output", "--out") or out

    if minutes is not None and minutes <= 0:
        raise VjepaError("--minutes must be > 0")
    if steps is not None and steps < 1:
        raise VjepaError("--steps must be >= 1")
    if quick and minutes is not None:
        raise VjepaError("--quick and --minutes contradict each other", hint="--quick has a fixed tiny size; drop one")
    cfg = DemoConfig(quick=quick, steps=steps, minutes=minutes, seed=seed, device=device, dtype=dtype)
    tasks: dict[str, int] = {}
    with progress() as bar:

        def stage(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total, info="")
            bar.update(tasks[name], completed=done, total=total)

        res = run_demo(cfg, out, stage=stage)
    if json_out:
        typer.echo(json.dumps(res.to_json()))
        return
    from rich.table import Table

    table = Table(title="vjepa demo: pretrained vs random init")
    for col in ("metric", "pretrained", "random init"):
        table.add_column(col)
    for r in res.rows:
        table.add_row(r["metric"], str(r["pretrained"]), str(r["random"]))
    console().print(table)
    console().print(f"report: {res.report}")


def register(app: typer.Typer) -> None:
    app.command(name="demo", help=HELP, epilog=EXAMPLES)(command)
