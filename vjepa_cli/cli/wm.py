"""`vjepa wm ...`: collect episodes, train an action-conditioned world model, plan toward goal images."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._options import (
    ComputeDtypeOpt,
    DecoderOpt,
    DeviceOpt,
    JsonOpt,
    OldOutputDirOpt,
    OutDirOpt,
    RenderOpt,
    SetOpt,
    TrainDtypeOpt,
    either,
)

app = typer.Typer(no_args_is_help=True)

ModelReq = Annotated[Path, typer.Option("--model", "-m", help="World-model file written by `vjepa wm train`.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
GoalStepsOpt = Annotated[int | None, typer.Option(
    "--goal-steps", help="Gymnasium envs without goals: goal-policy actions from the seeded reset to the goal "
                         "frame (default: the recipe's data.goal_steps; collect: 0 = no goal images).")]
GoalPolicyOpt = Annotated[str | None, typer.Option(
    "--goal-policy", help="random, walk (random walk) or scripted (the task's own, e.g. PushT pushes the block).")]


@app.command(help="Record episodes from a simulated environment (reach2d, push2d, or gym:<id>).",
             epilog="Example:\n\n  vjepa wm collect --env reach2d --episodes 200 -o episodes/reach2d")
def collect(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="New folder for manifest.csv and episodes "
                                                                    "(required).", show_default=False)] = None,
    out_old: OldOutputDirOpt = None,
    env: Annotated[str, typer.Option("--env", help="reach2d, push2d, or gym:<Gymnasium id> (needs the sim extra: "
                                                   "pip install 'vjepa-cli\\[sim]').")] = "reach2d",
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Episodes to record.")] = 100,
    steps: Annotated[int, typer.Option("--steps", help="Actions per episode (frames = steps + 1).")] = 24,
    size: Annotated[int, typer.Option("--size", help="Frame side in pixels.")] = 64,
    seed: SeedOpt = 0,
    policy: Annotated[str, typer.Option("--policy", help="random (uniform actions) or noisy (scripted expert + noise).")] = "random",
    goal_steps: GoalStepsOpt = None,
    goal_policy: GoalPolicyOpt = None,
    probe_resets: Annotated[int, typer.Option(
        "--probe-resets", min=0, help="Also record this many seeded resets (first frame, and the goal frame with "
                                      "--goal-steps) with their states, for the state probe alone.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.envs.collect import run_wm_collect
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.log import console, progress

    out = either(out, out_old, "--output", "--output-dir")
    if out is None:
        raise VjepaError("no output folder given", hint="add -o FOLDER (a new folder for the episodes)")
    with progress() as bar:
        task = bar.add_task(f"collect {env}", total=episodes, info="")
        resets = bar.add_task("probe resets", total=probe_resets, info="", visible=probe_resets > 0)
        res = run_wm_collect(env, episodes, out, steps=steps, size=size, seed=seed, policy=policy,
                             goal_steps=goal_steps or 0, goal_policy=goal_policy or "random",
                             on_episode=lambda i: bar.advance(task), probe_resets=probe_resets,
                             on_reset=lambda i: bar.advance(resets))
    if json_out:
        typer.echo(json.dumps({**asdict(res), "out_dir": str(res.out_dir)}))
    else:
        probe = f", {res.probe_frames} probe frames" if res.probe_frames else ""
        console().print(f"wrote {res.episodes} episodes ({res.frames} frames, {res.solved} solved{probe}) to {res.out_dir}")


@app.command(help="Train an action-conditioned predictor on episodes (collects them first if the recipe says so).",
             epilog="Examples:\n\n  vjepa wm train recipes/wm/reach2d.yaml -o runs/reach2d\n\n"
                    "  vjepa wm train recipes/wm/reach2d.yaml -o runs/reach2d --resume")
def train(
    recipe: Annotated[str, typer.Argument(metavar="RECIPE", help="Recipe YAML file, or a built-in recipe name "
                                                                 "(wm/reach2d, wm/push2d, wm/reacher, wm/pusht).")],
    sets: SetOpt = None,
    out: OutDirOpt = None,
    out_old: OldOutputDirOpt = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N (the recipe's `device`; "
                                                                "auto: cuda when available).", show_default=False)] = None,
    dtype: TrainDtypeOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in the output folder.")] = False,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.log import console, progress
    from vjepa_cli.train.sharding import end_process_group, leave_if_distributed
    from vjepa_cli.train.wm import run_wm_train

    out = either(out, out_old, "--output", "--output-dir")
    flags = [f"{k}={v}" for k, v in (("device", device), ("optim.mixed_precision", dtype)) if v is not None]
    cfg = load_recipe(WMConfig, recipe, flags + list(sets or []))
    out = out or Path("runs") / Path(recipe).stem
    with progress() as bar:
        state = {"task": None}

        def on_phase(name: str, total: int) -> None:
            state["task"] = bar.add_task(name, total=total, info="")

        def on_step(i: int, info: dict) -> None:
            text = f"loss {info['loss']:.4f}" if "loss" in info else ""
            bar.update(state["task"], completed=i + 1, info=text)

        res = run_wm_train(cfg, out, resume=resume, on_phase=on_phase, on_step=on_step)
    end_process_group()  # under torchrun: no process exits while another still talks
    resume_cmd = f"vjepa wm train {recipe} -o {res.out_dir} --resume"
    if json_out:
        typer.echo(json.dumps({**asdict(res), "out_dir": str(res.out_dir),
                               "model_path": str(res.model_path) if res.model_path else None,
                               "resume_command": resume_cmd if res.interrupted else None}))
    elif res.interrupted:
        console().print(f"stopped at step {res.steps}; continue with: {resume_cmd}", highlight=False)
    else:
        console().print(f"trained {res.steps} steps on {res.episodes} episodes in {res.seconds:.0f} s, "
                        f"final loss {res.final_loss:.4f}\nworld model: {res.model_path}")
    leave_if_distributed()


@app.command(help="Plan actions from a start image toward a goal image.",
             epilog="Example:\n\n  vjepa wm plan --model runs/reach2d/wm.safetensors --start s.png --goal g.png --json")
def plan(
    model: ModelReq,
    start: Annotated[Path, typer.Option("--start", help="Start image (PNG or JPEG).")],
    goal: Annotated[Path, typer.Option("--goal", help="Goal image, same size as the start.")],
    sets: SetOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    dtype: ComputeDtypeOpt = "fp32",
    decoder: DecoderOpt = None,
    render: RenderOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from rich.table import Table

    from vjepa_cli.eval.wm import run_wm_plan
    from vjepa_cli.log import console

    render, wm = _decoder_check(model, decoder, render, start.with_name(start.stem + ".imagined.png"), device)
    res = run_wm_plan(model, start, goal, sets=sets or [], seed=seed, device=device, dtype=dtype)
    if decoder is not None:
        from vjepa_cli.data.media import read_image
        from vjepa_cli.eval.wm_decoded import run_plan_picture

        run_plan_picture(wm, model, decoder, read_image(start), read_image(goal), res.actions, render)
    if json_out:
        typer.echo(json.dumps({**asdict(res), **({"render": str(render)} if decoder else {})}))
        return
    names = res.action_names or [f"a{i}" for i in range(len(res.actions[0]))]
    table = Table("step", *names, title="planned actions (execute the first, observe, re-plan)")
    for i, a in enumerate(res.actions):
        table.add_row(str(i), *(f"{x:+.4f}" for x in a))
    console().print(table)
    console().print(f"energy {res.start_energy:.4f} -> {res.energy:.4f}, confidence {res.confidence:.2f}, "
                    f"{res.seconds * 1000:.0f} ms")
    if decoder is not None:
        console().print(f"imagined rollout: {render}")


def _decoder_check(model: Path, decoder: Path | None, render: Path | None, default: Path, device: str | None):
    """With --decoder: (the picture's path, the world model) after checking the decoder reads its encoder;
    (None, None) without. Done before any planning, so a wrong decoder costs nothing."""
    from vjepa_cli.cli._options import check_render

    render = check_render(decoder, render, default)
    if decoder is None:
        return None, None
    from vjepa_cli.eval.wm_decoded import open_wm_decoder
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.runtime import resolve_device

    wm = load_world_model(model, resolve_device(device))
    open_wm_decoder(wm, decoder, model)
    return render, wm


@app.command(name="eval", help="Closed-loop planning in a simulator: success rate against baselines.",
             epilog="Example:\n\n  vjepa wm eval --env reach2d --episodes 50 --model runs/reach2d/wm.safetensors")
def eval_(
    model: ModelReq,
    env: Annotated[str, typer.Option("--env", help="reach2d, push2d or gym:<id> (must match the model's episodes).")] = "reach2d",
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Episodes per method.")] = 50,
    methods: Annotated[str, typer.Option("--methods", help="Planners to compare, comma-separated: "
                                                             "cem|mppi|gd[+prior][+reward|+reward-only][+state|+state-only] "
                                                             "(default: the model's plan.method).")] = "",
    goal_steps: GoalStepsOpt = None,
    goal_policy: GoalPolicyOpt = None,
    sets: SetOpt = None,
    seed: SeedOpt = 0,
    out: OutDirOpt = None,
    out_old: OldOutputDirOpt = None,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="Also run random actions and the scripted oracle.")] = True,
    device: DeviceOpt = None,
    dtype: ComputeDtypeOpt = "fp32",
    decoder: Annotated[Path | None, typer.Option("--decoder", help="Decoder file trained on this world model "
                                                                   "(`vjepa decoder train --model WM`): also write "
                                                                   "OUT/imagined.png, the first episode's plan "
                                                                   "imagined next to what happened.")] = None,
    json_out: JsonOpt = False,
) -> None:
    from rich.table import Table

    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.log import console, progress

    out = either(out, out_old, "--output", "--output-dir")
    _, wm = _decoder_check(model, decoder, None, Path("x.png"), device)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    total = episodes * (max(len(names), 1) + (2 if baselines else 0))
    with progress() as bar:
        task = bar.add_task("eval", total=total, info="")
        res = run_wm_eval(model, env, episodes, seed=seed, sets=sets or [], device=device, dtype=dtype, baselines=baselines,
                          out_dir=out, methods=names, goal_steps=goal_steps, goal_policy=goal_policy,
                          on_episode=lambda name, i: bar.update(task, advance=1, info=name))
    imagined = None
    if decoder is not None:
        from vjepa_cli.eval.wm_decoded import run_eval_picture

        imagined = run_eval_picture(wm, model, decoder, env, seed, sets or [], res.out_dir / "imagined.png")
    if json_out:
        typer.echo(json.dumps({**res.record(), **({"imagined": str(imagined)} if imagined else {})}))
        return
    table = Table("method", "success", "95% interval", "final distance", "steps", "plan ms/action", "confidence",
                  title=f"{res.env}: {res.episodes} episodes, at most {res.max_steps} steps ({res.device})")
    for r in res.rows:
        table.add_row(r.method, f"{100 * r.success_rate:.0f}%", f"{100 * r.success_low:.0f}-{100 * r.success_high:.0f}%",
                      f"{r.final_distance:.3f}", f"{r.steps:.1f}",
                      "-" if r.plan_ms is None else f"{r.plan_ms:.0f}",
                      "-" if r.confidence is None else f"{r.confidence:.2f}")
    console().print(table)
    console().print(f"trajectories: {res.png}\nresults: {res.json_path}")
    if imagined is not None:
        console().print(f"imagined vs actual: {imagined}")
