import subprocess
import sys

import pytest

from vjepa_cli import __version__

COMMANDS = ["synth", "preprocess", "pretrain", "convert", "export", "extract", "predict", "surprise",
            "viz", "viz-masks", "probe", "demo", "wm"]


def test_version(run_cli):
    r = run_cli("--version")
    assert r.code == 0 and r.out.strip() == f"vjepa {__version__}"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_with_example(run_cli, cmd):
    r = run_cli(cmd, "--help")
    assert r.code == 0, r
    assert "Usage" in r.out
    if cmd != "wm":
        assert "Example" in r.out or "Examples" in r.out


def test_unknown_command_is_usage_error(run_cli):
    r = run_cli("frobnicate")
    assert r.code == 2


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "vjepa_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"vjepa {__version__}"
