"""`benchmarks/gpu_check.py` on the CPU: every row of the table and of the JSON, with what each row checks
(the real trainer's step, flash SDPA and fused AdamW in it, the FSDP-sharded step, extract against
transformers), and the card table behind MFU. No timings are asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402
from gpu_check_common import auto_batch, bf16_peak, guarded, row  # noqa: E402


def test_card_peaks_and_batch():
    assert bf16_peak("NVIDIA H100 80GB HBM3") == (989.0, "H100 SXM")
    assert bf16_peak("NVIDIA H100 PCIe") == (756.0, "H100 PCIe")
    assert bf16_peak("NVIDIA H200") == (989.0, "H200")
    assert bf16_peak("NVIDIA A100-SXM4-80GB") == (312.0, "A100")
    assert bf16_peak("NVIDIA A10") == (125.0, "A10")  # not taken for an A100, nor an A100 for it
    assert bf16_peak("NVIDIA L40S") == (362.0, "L40S")
    assert bf16_peak("NVIDIA L4") == (121.0, "L4")
    assert bf16_peak("NVIDIA GeForce RTX 4090") == (165.0, "RTX 4090")
    assert bf16_peak("Tesla V100-SXM2-16GB") == (None, None)  # unknown: the table says so, MFU n/a
    assert auto_batch(79.6) == 24 and auto_batch(139.8) == 32 and auto_batch(22.0) == 4 and auto_batch(13.0) == 1


@pytest.mark.timeout(300)
def test_cpu_path_end_to_end(tmp_path, capsys):
    out = tmp_path / "gc.json"
    report = gpu_check.main(["--cpu", "--inline", "--json", str(out)])
    table = capsys.readouterr().out
    saved = json.loads(out.read_text())
    rows = {r["row"]: r for r in saved["rows"]}
    assert [r["row"] for r in saved["rows"]] == gpu_check.ROWS == [r["row"] for r in report["rows"]]
    for name, r in rows.items():
        line = next(ln for ln in table.splitlines() if ln.startswith(name + " "))
        assert r["value"] in line
    assert rows["train step, torch.compile"]["status"] == "skipped"
    assert rows["train step, torch.compile"]["value"] == "skipped: no CUDA"
    assert all(r["status"] == "ok" for n, r in rows.items() if n != "train step, torch.compile"), rows

    train = rows["train step, eager"]
    assert train["clips_per_s"] > 0 and train["tflop_per_step"] > 0 and train["mfu"] is None  # no CPU peak
    assert train["loss"] == train["loss"] and len(train["step_times"]) == 2
    assert all(0 < c < 64 and 0 < t < 64 for c, t in train["masks"])  # multi-block masks on the 4x4x4 grid
    assert "flash" in rows["SDPA flash / efficient"]["backends"]  # the CPU's flash kernel
    assert rows["SDPA flash / efficient"]["restricted"] == "ran"
    assert rows["fused AdamW"]["fused"] and rows["fused AdamW"]["fused_op_ran"]
    fsdp = rows["FSDP2, 1 process"]
    assert fsdp["sharded"] and fsdp["fused_adamw"] and fsdp["loss"] == fsdp["loss"]
    feats = rows["extract: features vs transformers"]
    assert feats["rel_err_fp32"] <= feats["tol_fp32"]
    assert rows["extract: vjepa run_extract end to end"]["windows"] == [2, 2]  # warm-up + one timed run
    assert rows["extract: vjepa encode_windows"]["clips_per_s"] > 0
    assert saved["peak_memory"] == "process peak RSS" and saved["cuda"] is False


def test_failed_section_reason_is_its_exception_line():
    err = "Traceback (most recent call last):\n  File \"x.py\", line 1\n    raise\ntorch.OutOfMemoryError: CUDA out of memory.\nW1206 warning after\n"
    why, tail = gpu_check._why(err, 1)
    assert why == "failed: torch.OutOfMemoryError: CUDA out of memory." and tail[-1] == "W1206 warning after"
    assert gpu_check._why("", -9)[0] == "failed: exit -9"


def test_a_failing_part_becomes_failed_rows():
    def boom():
        raise OSError("libx264 not found\nmore")

    got = guarded(["a", "b"], boom)
    assert [(r["row"], r["status"], r["value"]) for r in got] == [
        ("a", "failed", "failed: OSError: libx264 not found"), ("b", "failed", "failed: OSError: libx264 not found")]
    assert guarded(["a"], lambda: [row("a", "ok", "fine")])[0]["status"] == "ok"
