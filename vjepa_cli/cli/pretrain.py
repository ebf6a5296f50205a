"""`vjepa pretrain`: train an encoder + predictor with V-JEPA from a YAML recipe."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._options import JsonOpt, OldOutputDirOpt, OutDirOpt, SetOpt, either

HELP = (
    "Pretrain an encoder and predictor with V-JEPA from a YAML recipe (a path, or a built-in name such as "
    "tiny-cpu, vitb, vitl16, vitl16-v2). Writes config.yaml, metrics.jsonl, loss.png, checkpoints/ and, at the "
    "end, model.safetensors (EMA encoder + predictor) to the output folder. Ctrl-C finishes the step, saves a "
    "checkpoint and tells how to resume. Several processes: launch with torchrun or accelerate launch (DDP; "
    "--set distributed.strategy=fsdp shards the models per block for the largest ones)."
)
EXAMPLES = """Examples:\n\n  vjepa pretrain tiny-cpu -o runs/tiny\n\n  vjepa pretrain recipes/vitb.yaml --set optim.lr=3e-4 --set batch_size=16 -o runs/vitb\n\n  vjepa pretrain recipes/vitb.yaml -o runs/vitb --resume\n\n  torchrun --nproc_per_node 8 -m vjepa_cli pretrain vitl16 -o runs/vitl16\n\n  torchrun --nproc_per_node 8 -m vjepa_cli pretrain vitg16-v2 --set distributed.strategy=fsdp -o runs/vitg"""


def _main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def command(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML file, or a built-in recipe name (tiny-cpu, vitb, ...).")],
    sets: SetOpt = None,
    output_dir: OutDirOpt = None,
    output_old: OldOutputDirOpt = None,
    device: Annotated[Literal["auto", "cpu", "cuda"] | None, typer.Option(
        "--device", help="Where to train (the recipe's `device`; auto: cuda when available).",
        show_default=False)] = None,
    dtype: Annotated[Literal["auto", "fp32", "bf16", "fp16"] | None, typer.Option(
        "--dtype", help="Autocast precision (the recipe's `dtype`; auto: bf16 on CUDA, fp32 on CPU).",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the output folder from its latest checkpoint.")] = False,
    stop_at: Annotated[int | None, typer.Option("--stop-at", help="Stop (and checkpoint) after this step; schedules still span the recipe's steps. Continue later with --resume.")] = None,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.log import err_console, progress, setup_logging
    from vjepa_cli.train.pretrain import run_pretrain
    from vjepa_cli.train.sharding import end_process_group, leave_if_distributed

    setup_logging()
    output_dir = either(output_dir, output_old, "--output", "--output-dir")
    flags = [f"{k}={v}" for k, v in (("device", device), ("dtype", dtype)) if v is not None]
    cfg = load_recipe(PretrainConfig, recipe, [*flags, *(sets or [])])
    name = Path(recipe).name.removesuffix(".yaml").removesuffix(".yml")
    show = _main_rank()
    err = err_console()

    with progress() as bar:
        task = {"id": None}

        def on_start(info: dict) -> None:
            if not show:
                return
            err.print(
                f"pretraining {cfg.model.arch} ({info['encoder_params'] / 1e6:.2f}M encoder + "
                f"{info['predictor_params'] / 1e6:.2f}M predictor parameters) on {info['device']} x "
                f"{info['world_size']} ({info['strategy']}), {info['dtype']}; batch {info['batch_size']} x accum "
                f"{info['grad_accum']} x "
                f"{info['world_size']} devices = global batch {info['global_batch']}; token grid "
                f"{'x'.join(map(str, info['grid']))}, {info['masks']} mask pair(s) per clip; "
                f"steps {info['start_step']} -> {info['stop_at']} of {info['steps']}; output {info['output_dir']}",
                highlight=False,
            )
            task["id"] = bar.add_task("pretrain", total=info["stop_at"], completed=info["start_step"], info="")

        def on_step(s) -> None:
            if task["id"] is not None:
                bar.update(task["id"], completed=s.step,
                           info=f"loss {s.loss:.4f}  lr {s.lr:.2e}  {s.clips_per_s:.1f} clips/s")

        res = run_pretrain(cfg, output_dir=output_dir, resume=resume, name=name, stop_at=stop_at,
                           on_start=on_start, on_step=on_step)
    end_process_group()  # every rank, after its last collective: no process exits while another still talks
    if show:
        _print_result(res, recipe, json_out)
    leave_if_distributed()


def _print_result(res, recipe: str, json_out: bool) -> None:
    from vjepa_cli.log import console

    resume_cmd = f"vjepa pretrain {recipe} -o {res.output_dir} --resume"
    if json_out:
        typer.echo(json.dumps({
            "output_dir": str(res.output_dir), "step": res.step, "steps": res.steps, "start_step": res.start_step,
            "final_loss": res.final_loss, "checkpoint": str(res.checkpoint) if res.checkpoint else None,
            "model": str(res.model_path) if res.model_path else None,
            "loss_curve": str(res.loss_curve) if res.loss_curve else None, "interrupted": res.interrupted,
            "global_batch": res.global_batch, "world_size": res.world_size, "seconds": round(res.seconds, 3),
            "clips_per_s": round(res.clips_per_s, 3), "bad_videos": res.bad_videos, "warnings": res.warnings,
            "resume_command": resume_cmd if res.interrupted else None,
        }))
        return
    out = console()
    loss = f"{res.final_loss:.4f}" if res.final_loss is not None else "n/a"
    out.print(f"step {res.step}/{res.steps}, loss {loss}, {res.clips_per_s:.1f} clips/s over "
              f"{res.seconds:.0f} s; {res.bad_videos} bad video reads", highlight=False)
    if res.model_path:
        out.print(f"model: {res.model_path}", highlight=False)
    if res.checkpoint:
        out.print(f"checkpoint: {res.checkpoint}", highlight=False)
    if res.loss_curve:
        out.print(f"loss curve: {res.loss_curve}", highlight=False)
    if res.interrupted:
        out.print(f"stopped at step {res.step}; continue with: {resume_cmd}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="pretrain", help=HELP, epilog=EXAMPLES)(command)
