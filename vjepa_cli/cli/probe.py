"""`vjepa probe`: attentive probes on frozen features (see `vjepa_cli.eval.probe.run`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    OldOutputDirOpt,
    SetOpt,
    either,
    print_json,
)

HELP = "Train and evaluate attentive probes on frozen features (V-JEPA / V-JEPA 2 frozen evaluation)."
EXAMPLES = """Tasks and layouts: ssv2 (labels.json + train.json/validation.json, videos <id>.webm);
k400/k600/k700 (train.csv/validate.csv with label,youtube_id,time_start,time_end,split; videos under
train/ and val/); diving48 (Diving48_V2_train.json/test.json, rgb/<vid_name>.mp4); in1k (train/<class>/*.jpg,
val/<class>/*.jpg); manifest (--train/--val); synth-motion, synth-shapes (generated on first use).\n\n
Examples:\n\n
  vjepa probe --task synth-motion --model encoder.safetensors -o probe-motion\n\n
  vjepa probe --task ssv2 --data-root /data/ssv2 --model vitl.safetensors --cache /scratch/feats\n\n
  vjepa probe --task manifest --train train.csv --val val.csv --model m.safetensors --probe linear --json\n\n
  vjepa probe --task synth-motion --model vjepa2_1_vitb.safetensors --levels all"""


def _layers(text: str | None) -> list[int] | None:
    from vjepa_cli.errors import VjepaError

    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise VjepaError(f"--layers '{text}' is not a comma-separated list of block numbers", "example: --layers 2,4,-1") from None


def command(
    task: Annotated[str, typer.Option("--task", "-t", help="ssv2, k400, k600, k700, diving48, in1k, manifest, synth-motion, synth-shapes, or the dense "
                 "synth-seg (per-token mIoU; its keys via --set, e.g. train=64).")],
    model: ModelOpt = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", "-d", help="Dataset folder (not for synth-* or manifest).")] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="Probe recipe YAML (default: the built-in probe/<task>).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for probe.safetensors, metrics.json, "
                                                                       "confusion.png, curves.png (default: write "
                                                                       "nothing, print the results).")] = None,
    output_old: OldOutputDirOpt = None,
    train: Annotated[Path | None, typer.Option("--train", help="Training manifest (task manifest).")] = None,
    val: Annotated[Path | None, typer.Option("--val", help="Validation manifest (task manifest).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Keep encoded features in this folder and reuse them.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Encode fresh clips every epoch (the official on-the-fly protocol).")] = False,
    probe: Annotated[Literal["attentive", "attentive-v2", "linear"] | None, typer.Option(
        "--probe", help="attentive (V-JEPA 1), attentive-v2 (V-JEPA 2) or linear.", show_default=False)] = None,
    layers: Annotated[str | None, typer.Option("--layers", help="Encoder blocks to read, e.g. 2,4,-1 (concatenated); default: last.")] = None,
    levels: Annotated[str | None, typer.Option("--levels", help="V-JEPA 2.1 multi-level probe: 'all' or levels like 0,3 (0 = shallowest), concatenated.")] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="Probe a freshly initialised encoder of the same architecture (the baseline).")] = False,
    init_seed: Annotated[int | None, typer.Option("--init-seed", help="Seed of --random-init (default: the pretraining seed recorded in the model file, else 0); it rebuilds the init `vjepa pretrain` started from.")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    json_out: JsonOpt = False,
    sets: SetOpt = None,
) -> None:
    from vjepa_cli.config.extract import parse_levels
    from vjepa_cli.config.probe import DENSE, load_probe_config
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.eval.probe.run import RECORDED, run_probe

    if task in DENSE:  # per-token task: its own config (--set), mIoU
        _dense(task, model, recipe, sets, device, dtype, random_init, init_seed, either(output, output_old, "--output",
                                                                                      "--output-dir"), json_out)
        return
    if init_seed is not None and not random_init:
        raise VjepaError("--init-seed only applies with --random-init", hint="add --random-init, or drop --init-seed")
    if cache is not None and no_cache:
        raise VjepaError("--cache and --no-cache contradict each other")
    overrides = [] if probe is None else [f"probe.kind={probe}"]
    lay = _layers(layers)
    if lay is not None:
        overrides.append(f"probe.layers=[{','.join(map(str, lay))}]")
    lv = parse_levels(levels)
    if lv != ():
        overrides.append(f"probe.levels={lv}" if lv == "all" else f"probe.levels=[{','.join(map(str, lv))}]")
    if no_cache:
        overrides.append("cache=false")
    cfg = load_probe_config(task, recipe, overrides + list(sets or []))
    out = either(output, output_old, "--output", "--output-dir")
    seed = (RECORDED if init_seed is None else init_seed) if random_init else None
    with _progress_bar() as tick:
        res = run_probe(cfg, model=model, data_root=data_root, train=train, val=val, output_dir=out,
                        cache_dir=cache, device=device, random_init=seed, progress=tick, dtype=dtype)
    if json_out:
        print_json(_summary(res))
        return
    _render(res, out)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar with one line per phase that `run_probe` reports."""
    from vjepa_cli.log import progress

    with progress() as bar:
        ids: dict[str, int] = {}

        def tick(phase: str, n: int, total: int) -> None:
            if phase not in ids:
                ids[phase] = bar.add_task(phase, total=total, info="")
            bar.advance(ids[phase], n)

        yield tick


def _summary(res) -> dict:
    return {"task": res.task, "probe": res.kind, "val_top1": res.best["val_top1"], "val_top5": res.best["val_top5"],
            "train_top1": res.best["train_top1"], "lr": res.best["lr"], "wd": res.best["wd"],
            "num_train": res.num_train, "num_val": res.num_val, "skipped": res.skipped, "classes": len(res.classes),
            "cache_hit": res.cache_hit, **res.timings, "outputs": res.outputs, "notes": res.notes}


def _dense(task, model, recipe, sets, device, dtype, random_init, init_seed, out, json_out) -> None:
    from vjepa_cli.eval.probe.dense import run_dense_probe
    from vjepa_cli.eval.probe.run import RECORDED
    from vjepa_cli.log import console

    seed = (RECORDED if init_seed is None else init_seed) if random_init else None
    rec = run_dense_probe(task, model, sets=list(sets or []), recipe=recipe, device=device, dtype=dtype,
                          random_init=seed, output_dir=out)
    if json_out:
        print_json({k: v for k, v in rec.items() if k != "config"})
        return
    per_class = ", ".join(f"{c} {v:.3f}" for c, v in zip(rec["classes"], rec["iou"], strict=True))
    console().print(f"{task}: mIoU {rec['miou']:.3f} (all-background {rec['chance_miou']:.3f}; train "
                    f"{rec['train_miou']:.3f}); per class: {per_class}"
                    + (f"; written to {out}/" if out is not None else ""), highlight=False, soft_wrap=True)


def _render(res, out: Path | None) -> None:
    from rich.table import Table

    from vjepa_cli.log import console, err_console

    for note in res.notes:
        err_console().print(f"[yellow]note:[/] {note}", highlight=False)
    t = Table(title=f"{res.task}: {res.kind} probe, {res.num_train} train / {res.num_val} val videos, {len(res.classes)} classes")
    for col in ("lr", "wd", "train top-1", "val top-1", "val top-5"):
        t.add_column(col, justify="right")
    for r in sorted(res.heads, key=lambda r: -r["val_top1"])[:10]:
        style = "bold green" if r is res.best else None
        t.add_row(f"{r['lr']:g}", f"{r['wd']:g}", f"{r['train_top1']:.3f}", f"{r['val_top1']:.3f}", f"{r['val_top5']:.3f}", style=style)
    console().print(t)
    b = res.best
    console().print(f"best: val top-1 {b['val_top1']:.3f}, top-5 {b['val_top5']:.3f} (lr {b['lr']:g}, wd {b['wd']:g}); "
                    f"{len(res.heads)} heads; " + (f"written to {out}/" if out is not None else
                                                   "nothing written (give -o DIR to keep the probe)"),
                    highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(name="probe", help=HELP, epilog=EXAMPLES)(command)
