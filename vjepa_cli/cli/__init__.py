"""The `vjepa` command line: wiring only. Each command lives in its own module and calls a library
function; errors a user can cause arrive as `VjepaError` and are printed once, here, as one line."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from vjepa_cli import __version__
from vjepa_cli.cli import (
    classify,
    convert,
    decoder,
    demo,
    export,
    extract,
    predict,
    preprocess,
    pretrain,
    probe,
    surprise,
    synth,
    viz,
    viz_masks,
    wm,
)
from vjepa_cli.errors import VjepaError, resource_error

app = typer.Typer(
    name="vjepa",
    help="V-JEPA: self-supervised video representations, feature extraction, probing and world-model planning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vjepa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the video decoders' own log lines (FFmpeg, PyAV, decord).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or info lines: only results, warnings and errors.")
    ] = False,
) -> None:
    """V-JEPA: self-supervised video representations, feature extraction, probing and planning."""
    from vjepa_cli.allocator import keep_freed_memory
    from vjepa_cli.data.media import set_verbose
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.log import set_quiet

    keep_freed_memory()  # 7 % of a CPU forward went to page faults on re-allocated activations

    if os.environ.get("VJEPA_CPU_GEMM"):  # a bad value fails here, before any work (torch imported only then)
        from vjepa_cli.models.cpu_gemm import backend

        backend()
    if quiet and verbose:
        raise VjepaError("-q/--quiet and -v/--verbose contradict each other", hint="give one of them")
    set_quiet(quiet)
    set_verbose(verbose)  # quiet by default: our one-line errors say what went wrong with a video


for _mod in (synth, preprocess, pretrain, convert, export, extract, predict, surprise, viz, viz_masks, probe, classify,
             demo, decoder):
    _mod.register(app)
app.add_typer(wm.app, name="wm", help="World model: collect episodes, train an action-conditioned predictor, plan.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `vjepa` script and `python -m vjepa_cli`."""
    try:
        try:
            app(args=argv, prog_name="vjepa")
        except (RuntimeError, MemoryError) as e:
            known = resource_error(e)
            if known is None:
                raise
            raise known from None
    except VjepaError as e:
        from rich.markup import escape

        from vjepa_cli.log import err_console

        err_console().print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
