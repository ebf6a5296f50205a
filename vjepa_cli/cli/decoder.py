"""`vjepa decoder ...`: train a feature decoder that turns features and predictions into pictures."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._options import DeviceOpt, JsonOpt, ModelOpt, SetOpt, TrainDtypeOpt

app = typer.Typer(no_args_is_help=True)

TRAIN_EXAMPLES = """Examples:\n\n  vjepa decoder train --model model.safetensors --data synth:physics -o decoder.safetensors\n\n
  vjepa decoder train --model model.safetensors --data videos/train.csv --kind generative -o gen.safetensors\n\n
  vjepa decoder train --model runs/reach2d/wm.safetensors --data runs/reach2d/episodes -o wm-decoder.safetensors\n\n
  vjepa decoder train --model model.safetensors --data synth:physics -o decoder.safetensors --resume"""


@app.command(help="Train a decoder from the model's frozen (EMA target) patch features back to the frames of their "
                  "tubelet; `vjepa predict / surprise / wm plan / wm eval --decoder` then draw what was predicted. "
                  "Writes the decoder file and, beside it, a run folder (config.yaml, metrics.jsonl, checkpoint).",
             epilog=TRAIN_EXAMPLES)
def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Decoder file to write (.safetensors).")],
    model: ModelOpt = None,
    data: Annotated[str | None, typer.Option("--data", help="Videos: a manifest CSV, a folder with train.csv, a "
                                                            "`vjepa wm collect` folder, or "
                                                            "synth:<motion|shapes|physics> (built in; default "
                                                            "synth:physics).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="regression (default: closer to the truth at the "
                                                            "same budget, see README) or generative (flow matching: several "
                                                            "plausible frames per prediction).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps (default: the recipe's, 400).")] = None,
    recipe: Annotated[Path | None, typer.Option("--recipe", help="YAML recipe of decoder settings.")] = None,
    sets: SetOpt = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Run folder (default: OUTPUT without .safetensors, "
                                                                   "plus .run).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the run folder.")] = False,
    device: DeviceOpt = None,
    dtype: TrainDtypeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.decoder import DecoderTrainConfig
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.log import console, progress
    from vjepa_cli.train.decoder import run_decoder_train

    extra = [f"{k}={v}" for k, v in (("model", model), ("data.source", data), ("decoder.kind", kind),
                                      ("optim.steps", steps), ("device", device),
                                      ("optim.mixed_precision", dtype)) if v is not None]
    cfg = load_recipe(DecoderTrainConfig, recipe, [*(sets or []), *extra])
    if not cfg.model:
        raise VjepaError("no model given", hint="pass --model model.safetensors (or set $VJEPA_MODEL)")
    with progress() as bar:
        state = {"task": None}

        def on_phase(name: str, total: int) -> None:
            state["task"] = bar.add_task(name, total=total, info="")

        def on_step(i: int, info: dict) -> None:
            if i < 0:
                bar.advance(state["task"])
            else:
                bar.update(state["task"], completed=i + 1, info=f"loss {info['loss']:.4f}")

        res = run_decoder_train(cfg, output, run_dir=run_dir, resume=resume, on_phase=on_phase, on_step=on_step)
    resume_cmd = f"vjepa decoder train --model {cfg.model} --data {cfg.data.source} -o {output} --resume"
    if json_out:
        typer.echo(json.dumps({**asdict(res), "output": str(res.output) if res.output else None,
                               "run_dir": str(res.run_dir), "resume_command": resume_cmd if res.interrupted else None}))
    elif res.interrupted:
        console().print(f"stopped at step {res.steps}; continue with: {resume_cmd}", highlight=False)
    else:
        console().print(f"trained a {res.kind} decoder for {res.steps} steps on {res.samples} clips in "
                        f"{res.seconds:.0f} s, final loss {res.final_loss:.4f}\ndecoder: {res.output}", highlight=False)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="decoder", help="Feature decoder: turn features and predictions into pictures.")
