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


@pytest.mark.parametrize("exc, words", [
    (RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed."), "data loader worker died"),
    (MemoryError(), "out of memory"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes."),
     "out of memory"),
])
def test_running_out_of_memory_is_one_line(run_cli, monkeypatch, tmp_path, exc, words):
    from vjepa_cli.data import synth

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(synth, "generate_synth", boom)
    r = run_cli("synth", tmp_path / "s", "--videos", "2")
    assert r.code == 1 and words in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) <= 3  # one message (rich may wrap it), no traceback


def test_other_runtime_errors_are_not_disguised(run_cli, monkeypatch, tmp_path):
    from vjepa_cli.data import synth

    def boom(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(synth, "generate_synth", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        run_cli("synth", tmp_path / "s", "--videos", "2")


def test_piped_output_is_not_wrapped(tmp_path):
    """Through a pipe, a long path stays on one line (rich wraps at 80 columns only on a terminal)."""
    import subprocess
    import sys

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    r = subprocess.run([sys.executable, "-m", "vjepa_cli", "convert", str(deep / "missing.pt"), "-o",
                        str(deep / "x.safetensors")], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "COLUMNS": "80"})
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and str(deep / "missing.pt") in r.stderr


def test_quiet_silences_progress_and_info_but_not_results(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA_PROGRESS", "1")  # progress bars on even without a terminal
    loud = run_cli("synth", tmp_path / "a", "-n", "4", "--frames", "4", "--size", "32")
    quiet = run_cli("-q", "synth", tmp_path / "b", "-n", "4", "--frames", "4", "--size", "32")
    assert loud.code == 0 and quiet.code == 0, (loud, quiet)
    assert quiet.err == "" and loud.err != ""  # the (transient) bar wrote to stderr without -q
    from vjepa_cli.log import progress, set_quiet

    set_quiet(True)
    try:
        assert progress().disable
    finally:
        set_quiet(False)
    assert not progress().disable
    assert quiet.out == loud.out.replace(str(tmp_path / "a"), str(tmp_path / "b"))
    both = run_cli("-q", "-v", "synth", tmp_path / "c")
    assert both.code == 1 and "contradict" in both.err and not (tmp_path / "c").exists()


def test_shell_completion_completes_commands_and_choices():
    import os
    import subprocess
    import sys

    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_VJEPA_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        code = "import sys; sys.argv[0] = 'vjepa'; from vjepa_cli.cli import main; main()"
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        return r.stdout.split()

    assert complete("vjepa ext", 1) == ["extract"]
    assert "classify" in complete("vjepa c", 1) and "convert" in complete("vjepa c", 1)


def test_one_option_vocabulary(run_cli, tmp_path):
    """-o/--output names the output everywhere, -j/--jobs parallel processes; the earlier spellings still work
    but are not shown."""
    ok = run_cli("synth", "-o", tmp_path / "s", "-n", "2", "--frames", "4", "--size", "32", "-j", "1")
    assert ok.code == 0 and (tmp_path / "s" / "train.csv").is_file()
    old = run_cli("synth", tmp_path / "t", "-n", "2", "--frames", "4", "--size", "32", "--workers", "1")
    assert old.code == 0
    assert run_cli("synth").code == 1 and "no output folder" in run_cli("synth").err
    for cmd, shown, hidden in (("preprocess", ["--jobs", "--reencode-dir"], ["--workers", "--out-dir"]),
                               ("synth", ["--output", "--jobs"], ["--workers"]),
                               ("probe", ["--output", "--dtype"], ["--output-dir"]),
                               ("wm collect", ["--output", "[sim]"], ["--output-dir", "(needs )"]),
                               ("wm train", ["--output", "--device", "Examples:"], ["--output-dir", "Example:\n"]),
                               ("export", ["--no-predictor"], ["--with-predictor"])):
        text = run_cli(*cmd.split(), "--help").out
        assert all(s in text for s in shown) and not any(h in text for h in hidden), cmd


def test_pretrain_takes_device_dtype_and_both_output_spellings(run_cli, tmp_path, monkeypatch):
    """--device/--dtype override the recipe; an unknown choice is refused by the parser before any work."""
    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path / "cache"))
    bad = run_cli("pretrain", "tiny-cpu", "-o", tmp_path / "r", "--dtype", "fp8")
    assert bad.code == 2 and "fp8" in bad.err and not (tmp_path / "r").exists()
    both = run_cli("pretrain", "tiny-cpu", "-o", tmp_path / "a", "--output-dir", tmp_path / "b")
    assert both.code == 1 and "same option" in both.err
    from tests.test_pretrain import TINY
    from vjepa_cli.config._load import read_yaml

    sets = [a for s in [*TINY, "steps=1"] for a in ("--set", s)]
    r = run_cli("pretrain", "tiny-cpu", *sets, "--device", "cpu", "--dtype", "fp32", "--output-dir", tmp_path / "o")
    assert r.code == 0, r
    cfg = read_yaml(tmp_path / "o" / "config.yaml")
    assert (cfg["device"], cfg["dtype"]) == ("cpu", "fp32")  # the recipe says auto / auto


def test_context_has_one_form_and_surprise_writes_only_when_asked(run_cli, tmp_path):
    """predict and surprise read --context alike (frame counts, comma separated); predict takes one; surprise
    on videos needs -o (no folder appears in the current directory)."""
    r = run_cli("predict", tmp_path / "v.mp4", "-o", tmp_path / "p.safetensors", "--context", "2,4")
    assert r.code == 1 and "takes one context length" in r.err
    r = run_cli("surprise", tmp_path / "v.mp4", "--context", "2,x", "-o", tmp_path / "s")
    assert r.code == 1 and "bad --context '2,x'" in r.err
    r = run_cli("surprise", tmp_path / "v.mp4")
    assert r.code == 1 and "no output folder" in r.err
    r = run_cli("surprise", tmp_path / "v.mp4", "-o", tmp_path / "s", "--combine", "median")
    assert r.code == 2 and "median" in r.err  # a choice
