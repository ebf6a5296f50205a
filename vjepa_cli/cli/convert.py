"""`vjepa convert`: official V-JEPA / V-JEPA 2 / 2.1 checkpoints or transformers weights -> a vjepa model file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from vjepa_cli.cli._options import DtypeOpt, JsonOpt, RevisionOpt

HELP = "Convert official V-JEPA / V-JEPA 2 / 2-AC / 2.1 or transformers weights to a vjepa model file."
EXAMPLES = (
    "Examples:\n\n"
    "  vjepa convert vitl16.pth.tar -o vitl16.safetensors\n\n"
    "  vjepa convert vitg.pt -o vitg.safetensors --dtype bf16 --no-predictor\n\n"
    "  vjepa convert vjepa2-ac-vitg.pt -o vjepa2-ac-vitg.safetensors\n\n"
    "  vjepa convert vjepa2_1_vitG_384.pt -o vitG-2.1.safetensors\n\n"
    "  vjepa convert ./vjepa2-vitl-fpc64-256 -o vitl.safetensors --json\n\n"
    "  vjepa convert facebook/vjepa2-vitl-fpc64-256 -o vitl.safetensors\n\n"
    "  vjepa convert ssv2-vitl-16x2x3.pt --task ssv2 -o ssv2-probe.safetensors\n\n"
    "  vjepa convert ./vjepa2-vitl-ssv2 -o vitl.safetensors --probe-output ssv2-probe.safetensors"
)


def command(
    src: Annotated[str, typer.Argument(help="Official .pth.tar/.pt, transformers model.safetensors or its folder, "
                                            "a vjepa model file, or a Hugging Face repo id (owner/name).",
                                       show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .safetensors file to write.",
                                         show_default=False)],
    which: Annotated[Literal["target", "context"] | None, typer.Option(
        "--which", help="Encoder of a training checkpoint: target (EMA, default) or context.")] = None,
    no_predictor: Annotated[bool, typer.Option("--no-predictor", help="Leave the predictor out.")] = False,
    dtype: DtypeOpt = "fp32",
    num_heads: Annotated[int | None, typer.Option(
        "--num-heads", min=1, help="Encoder heads (default: config.json, else the official count for the width); "
                                   "for an official probe checkpoint, its heads (default: the task recipe's).")] = None,
    pred_num_heads: Annotated[int | None, typer.Option(
        "--pred-num-heads", min=1,
        help="Predictor heads (default: encoder's for V-JEPA 1, 12 for V-JEPA 2, 16 for the 1024-wide 2-AC).")] = None,
    img_size: Annotated[int | None, typer.Option(
        "--img-size", min=1,
        help="Crop size the model was trained at (default: from pos_embed; RoPE: 256, 384 for V-JEPA 2.1); "
             "sets the predictor's default token grid.")] = None,
    num_frames: Annotated[int | None, typer.Option(
        "--num-frames", min=1, help="Frames per clip (default: from pos_embed, or 64 for RoPE).")] = None,
    revision: RevisionOpt = None,
    probe_output: Annotated[Path | None, typer.Option(
        "--probe-output", help="transformers VJEPA2ForVideoClassification: also write its probe head here "
                               "(for `vjepa classify`).", show_default=False)] = None,
    probe_task: Annotated[str, typer.Option(
        "--task", help="Probes: the task whose clip protocol (frames, segments, views, size) the probe was "
                       "trained with, e.g. ssv2.")] = "manifest",
    classes: Annotated[Path | None, typer.Option(
        "--classes", help="Probes: a text file of class names, one per line, in output order.",
        show_default=False)] = None,
    head: Annotated[int | None, typer.Option(
        "--head", min=0, help="Official V-JEPA 2 probe checkpoints: which of its heads to take (default 0).",
        show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output file if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    from vjepa_cli.eval.probe.convert import convert_probe, is_probe_source
    from vjepa_cli.io.hub import resolve_model_path
    from vjepa_cli.log import progress
    from vjepa_cli.models.load import run_convert

    local = resolve_model_path(src, revision)
    probe_src = is_probe_source(local)
    if probe_src and not (local.is_dir() or local.suffix == ".safetensors"):  # an official probe checkpoint
        _render_probe(convert_probe(local, output, task=probe_task, classes_file=classes, head=head,
                                    num_heads=num_heads, overwrite=overwrite), json_out)
        return
    if probe_output is not None and not probe_src:
        from vjepa_cli.errors import VjepaError

        raise VjepaError(f"--probe-output: {src} holds no probe head (expected a VJEPA2ForVideoClassification "
                         "folder or an official probe checkpoint)")
    steps = ["reading", "checking", "hashing", "writing"]
    with progress(transient=True) as bar:
        task = bar.add_task("convert", total=len(steps), info="")

        def on_step(name: str) -> None:
            bar.update(task, completed=steps.index(name), info=name)

        result = run_convert(
            src, output, which=which, predictor=not no_predictor, dtype=dtype, overwrite=overwrite,
            num_heads=num_heads, pred_num_heads=pred_num_heads, img_size=img_size, num_frames=num_frames,
            revision=revision, on_step=on_step,
        )
        bar.update(task, completed=len(steps), info="done")
    from rich.markup import escape

    from vjepa_cli.log import err_console

    for warning in result.warnings:  # on stderr, so --json output stays one object
        err_console().print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    probe_res = None
    if probe_output is not None:  # the classifier's head too; without it, no model file is left either
        try:
            probe_res = convert_probe(local, probe_output, task=probe_task, classes_file=classes, overwrite=overwrite)
        except BaseException:
            Path(result.output).unlink(missing_ok=True)
            raise
    _render(result, json_out)
    if probe_res is not None:
        _render_probe(probe_res, json_out)


def _render_probe(r, json_out: bool) -> None:
    import dataclasses
    import json

    from vjepa_cli.log import console

    if json_out:
        console().file.write(json.dumps({"probe": dataclasses.asdict(r)}, sort_keys=True) + "\n")
        return
    console().print(f"probe: {r.source} ({r.source_format}) -> {r.output}: {r.kind}, {r.depth} blocks, "
                    f"{r.num_heads} heads, {r.dim}-wide features, {r.num_classes} classes, protocol of task "
                    f"'{r.task}'", highlight=False, soft_wrap=True, markup=False)
    for n in r.notes:
        console().print(f"note: {n}", highlight=False, soft_wrap=True, markup=False)


def _render(r, json_out: bool) -> None:
    import dataclasses
    import json

    from rich.table import Table

    from vjepa_cli.log import console

    if json_out:
        console().file.write(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n")
        return
    from vjepa_cli.config.model import ARCHS

    c = r.config
    exact = ARCHS[r.arch][:3] == (c["embed_dim"], c["depth"], c["num_heads"])
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    rows = [
        ("source", f"{r.source}  [dim]({r.source_format}"
                   + (f", {r.encoder_key}" if r.encoder_key else "") + ")[/]"),
        ("arch", f"{r.arch}{'' if exact else ' (closest preset)'}: D={c['embed_dim']} depth={c['depth']} heads={c['num_heads']} "
                 f"mlp={c['mlp_ratio']:.4g} patch={c['patch_size']} tubelet={c['tubelet_size']} {c['pos_embed']}"
                 + _v21_encoder(c)),
        ("input", f"{c['num_frames']} frames at {c['img_size']}px"),
        ("encoder", f"{r.encoder_params / 1e6:.2f}M params"),
        ("predictor", _predictor_row(r)),
        ("written", f"{r.output}  [dim]({r.num_tensors} tensors, {r.dtype})[/]"),
    ]
    rows += [("note", n) for n in r.notes]
    for k, v in rows:
        t.add_row(k, v)
    console().print(t)


def _predictor_row(r) -> str:
    if not r.has_predictor:
        return "not included"
    if r.predictor_kind == "ac":
        a = r.ac_config
        return (f"{r.predictor_params / 1e6:.2f}M params, action-conditioned (V-JEPA 2-AC): D={a['pred_embed_dim']} "
                f"depth={a['depth']} heads={a['num_heads']} actions={a['action_dim']} states={a['state_dim']} "
                f"grid={a['grid'][0]}x{a['grid'][1]}")
    c = r.config
    row = (f"{r.predictor_params / 1e6:.2f}M params: D={c['pred_embed_dim']} depth={c['pred_depth']} "
           f"heads={c['pred_num_heads']} mask tokens={c['pred_num_mask_tokens']}")
    if c.get("levels"):
        out = c.get("pred_out_dim") or c["embed_dim"]
        row += (f", reads {c.get('pred_levels', 1)} level(s), predicts {c.get('pred_levels', 1)} x {out}"
                + (" for targets and context" if c.get("pred_context_head") else ""))
    return row


def _v21_encoder(c: dict) -> str:
    """The V-JEPA 2.1 part of the arch row ("" for V-JEPA 1/2)."""
    if not c.get("levels") and not c.get("rope_interleaved"):
        return ""
    parts = ["interleaved RoPE" if c.get("rope_interleaved") else "tiled RoPE"]
    if c.get("rope_interp_grid"):
        parts.append(f"positions on a {c.get('rope_interp_grid')}-patch grid")
    parts += [p for p, on in (("image embedder", c.get("image_embed")), ("modality vectors", c.get("modality_embed"))) if on]
    if c.get("levels"):
        parts.append(f"{len(c.get('levels'))} levels (blocks {', '.join(map(str, c.get('levels')))})")
    return "\n[dim]V-JEPA 2.1: " + ", ".join(parts) + "[/]"


def register(app: typer.Typer) -> None:
    app.command(name="convert", help=HELP, epilog=EXAMPLES)(command)
