"""`vjepa classify`: apply a trained probe to new videos (see `vjepa_cli.eval.probe.classify`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vjepa_cli.cli._options import DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, print_json

HELP = "Classify videos with a trained probe (top-k classes and probabilities)."
EXAMPLES = (
    "Examples:\n\n"
    "  vjepa classify clip.mp4 --probe probe/probe.safetensors --model model.safetensors\n\n"
    "  find videos/ -name '*.mp4' | vjepa classify - --probe probe/probe.safetensors --json --top-k 1"
)

InputsArg = Annotated[list[str], typer.Argument(help="Videos, images, folders, manifests, or - for paths on stdin.",
                                                show_default=False)]
ProbeOpt = Annotated[Path, typer.Option("--probe", "-p", help="probe.safetensors written by `vjepa probe`.",
                                        show_default=False)]
TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes to report per video.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Videos per forward pass.")]


def command(
    inputs: InputsArg,
    probe: ProbeOpt,
    model: ModelOpt = None,
    top_k: TopKOpt = 5,
    batch_size: BatchOpt = 4,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "fp32",
    json_out: JsonOpt = False,
) -> None:
    """Classify each input with the probe; the model defaults to the one the probe was trained on."""
    from vjepa_cli.eval.probe.classify import classify, load_classifier
    from vjepa_cli.infer.inputs import collect_videos
    from vjepa_cli.log import progress

    paths = [p for p, _ in collect_videos(inputs, sys.stdin if "-" in inputs else None, images=True)]
    clf = load_classifier(probe, model, device=device, dtype=dtype)
    failed = 0
    with progress(transient=True) as bar:
        task = bar.add_task("classify", total=len(paths), info="")
        for pred in classify(clf.probe, clf.encoder, paths, top_k=top_k, device=clf.device, dtype=clf.dtype,
                             batch_size=batch_size, on_done=lambda n: bar.advance(task, n)):
            failed += pred.error is not None
            _render(pred, json_out)
    if failed:
        from vjepa_cli.log import err_console

        err_console().print(f"{failed} of {len(paths)} input(s) failed", highlight=False)
        raise typer.Exit(1)


def _render(pred, json_out: bool) -> None:
    from vjepa_cli.log import console, err_console

    if json_out:
        print_json(pred.to_json())
    elif pred.error is not None:
        err_console().print(f"[red]failed[/] {pred.path}: {pred.error}", highlight=False, soft_wrap=True)
    else:
        ranked = ", ".join(f"{c} {p:.3f}" for c, p in pred.top)
        console().print(f"{pred.path}\t{ranked}", highlight=False, soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.command(name="classify", help=HELP, epilog=EXAMPLES)(command)
