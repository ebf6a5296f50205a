"""GPU readiness check (issue 19): one table, and a JSON file with the same numbers.

    bash benchmarks/gpu_check.sh                   # on a CUDA GPU: ViT-L 16x224, bf16, about 8 minutes at most
    bash benchmarks/gpu_check.sh --quick           # fewer steps and repeats, 6 minutes at most
    bash benchmarks/gpu_check.sh --only compile    # one section again (device, train, fsdp, extract, compile)
    python benchmarks/gpu_check.py --cpu --inline  # tiny sizes on the CPU (what CI and the test run)

Rows (each with its median time and peak memory, torch.cuda.max_memory_allocated on CUDA):
- device: name, its dense bf16 peak from a table of data-sheet figures (unknown card: said so), and a measured
  bf16 8192^3 GEMM rate;
- train step, eager / torch.compile: the real pretraining step (`PretrainTrainer.train_step`, vitl16 recipe,
  bf16 autocast, official multi-block masks), clips/s, TFLOP/s from the analytic count of bench_model.py, and
  MFU against the card's peak (goal >= 0.45);
- SDPA flash / efficient: the attention backends seen by the profiler in one step, and one step run with SDPA
  restricted to flash + memory-efficient (`torch.nn.attention.sdpa_kernel`);
- fused AdamW: the trainer's optimizer asked for `fused=True`, and `_fused_adamw_` ran in the step;
- FSDP2, 1 process: the trainer's step with its models sharded by `vjepa_cli.train.sharding.shard_models`;
- extract: `vjepa extract`'s encoder path against transformers' VJEPA2Model (same weights, same input pipeline),
  their features compared, and `run_extract` end to end on a generated video.

Each section runs in its own process with a time budget (a section over budget is killed and its rows say
"timeout"); the compiled step runs last with what is left, up to its own budget, so the whole check stays under
`--budget` seconds (470 s; 360 with --quick). Without CUDA, tiny sizes run instead and what needs CUDA
(torch.compile) is "skipped: no CUDA".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gpu_check_common import CPU, GPU, GPU_QUICK, Sizes, bf16_peak, peak_kind, row  # noqa: E402

# (section, budget s, budget s with --quick, needs CUDA, its rows)
SECTIONS: list[tuple[str, int, int, bool, list[str]]] = [
    ("device", 40, 40, False, ["device"]),
    ("train", 120, 90, False, ["train step, eager", "SDPA flash / efficient", "fused AdamW"]),
    ("fsdp", 75, 60, False, ["FSDP2, 1 process"]),
    ("extract", 120, 90, False, ["extract: vjepa encode_windows", "extract: transformers VJEPA2Model",
                                 "extract: features vs transformers", "extract: vjepa run_extract end to end"]),
    ("compile", 240, 150, True, ["train step, torch.compile"]),
]
ROWS = [r for s in SECTIONS for r in s[4]]


def device_rows(sz: Sizes, dev: torch.device) -> list[dict]:
    """The device, its bf16 peak and a measured GEMM rate (bf16 8192^3 on CUDA, fp32 2048^3 on the CPU)."""
    if dev.type != "cuda":
        from bench_model import gemm_peak

        gf = gemm_peak()
        return [row("device", "ok", f"CPU ({torch.get_num_threads()} thread(s)); fp32 GEMM {gf:.0f} GFLOP/s (no bf16 "
                    "peak: MFU n/a)", device_name="cpu", gemm_tflops=gf / 1e3)]
    name = torch.cuda.get_device_name(dev)
    peak, label = bf16_peak(name)
    a, b = (torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16) for _ in range(2))
    c = torch.empty_like(a)
    from gpu_check_common import median, timed

    secs = median(timed(lambda: torch.mm(a, b, out=c), dev, 3, 10))
    gemm = 2 * 8192**3 / secs / 1e12
    mem = torch.cuda.get_device_properties(dev).total_memory / 2**30
    known = f"bf16 dense peak {peak:.0f} TFLOP/s ({label})" if peak else "unknown card: no bf16 peak, MFU n/a"
    return [row("device", "ok" if peak else "check", f"{name}, {mem:.0f} GiB; {known}; bf16 GEMM {gemm:.0f} TFLOP/s",
                secs, None, device_name=name, matched_as=label, peak_tflops=peak, gemm_tflops=gemm,
                memory_gib=mem, cuda=torch.version.cuda)]


def run_section(name: str, sz: Sizes, dev: torch.device) -> list[dict]:
    if name == "device":
        return device_rows(sz, dev)
    if name in ("train", "compile"):
        from gpu_check_train import train_rows

        return train_rows(sz, dev, compile_=name == "compile")
    if name == "fsdp":
        from gpu_check_train import fsdp_rows

        return fsdp_rows(sz, dev)
    if name == "extract":
        from gpu_check_extract import extract_rows

        return extract_rows(sz, dev)
    raise ValueError(f"unknown section {name!r}; one of {', '.join(s[0] for s in SECTIONS)}")


def _placeholders(names: list[str], status: str, value: str) -> list[dict]:
    return [row(n, status, value) for n in names]


def _why(err: str, returncode: int) -> tuple[str, list[str]]:
    """A failed child's one-line reason (its last exception line, else its last line) and its stderr tail."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ("Error" in ln or "Exception" in ln) and not ln.startswith(" ")]
    return f"failed: {(errors or lines or ['exit ' + str(returncode)])[-1][:200]}", lines[-40:]


def _child(name: str, sz: Sizes, cpu: bool, timeout: float) -> tuple[list[dict] | None, str, list[str]]:
    """Run one section in a fresh process (its own CUDA context and memory peak), killed after `timeout` s.
    -> (its rows or None, "ok" or why not, the tail of its stderr when it failed)."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_{os.getpid()}_{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--sizes", json.dumps(asdict(sz)),
           "--out", str(out), "--threads", str(torch.get_num_threads()), *(["--cpu"] if cpu else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the section and its compile workers
        _, err = proc.communicate()
        return None, f"timeout: did not finish in {timeout:.0f} s", err.strip().splitlines()[-40:]
    if proc.returncode != 0 or not out.exists():
        return None, *_why(err, proc.returncode)
    rows = json.loads(out.read_text())
    out.unlink()
    return rows, "ok", []


def run_all(args, sz: Sizes, dev: torch.device) -> list[dict]:
    t_start, rows = time.perf_counter(), []
    for name, budget, budget_quick, needs_cuda, names in SECTIONS:
        t0 = time.perf_counter()
        left = args.budget - (t0 - t_start)
        if args.only and name not in args.only.split(","):
            got = _placeholders(names, "skipped", "skipped: not in --only")
        elif needs_cuda and dev.type != "cuda":
            got = _placeholders(names, "skipped", "skipped: no CUDA")
        elif left < 20:
            got = _placeholders(names, "skipped", "skipped: total budget spent")
        elif args.inline:
            got = run_section(name, sz, dev)
        else:
            got, why, tail = _child(name, sz, dev.type != "cuda", min(budget_quick if args.quick else budget, left))
            if got is None:
                got = _placeholders(names, why.split(":")[0], why)
                got[0]["stderr_tail"] = tail
        for r in got:
            r.update(section=name, section_s=round(time.perf_counter() - t0, 1))
        if name == "train" and got[0]["status"] in ("ok", "check") and got[0].get("batch"):
            sz = sz.with_batch(got[0]["batch"])  # the compiled and FSDP steps use the batch that fitted
        rows += got
        print(f"[gpu_check] {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return rows


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(report: dict) -> None:
    print(f"GPU check {report['date']}: {report['device']}, torch {report['torch']}, {report['mode']} sizes "
          f"({report['sizes']['arch']} {report['sizes']['frames']}x{report['sizes']['size']}, {report['sizes']['dtype']}), "
          f"{report['total_s']:.0f} s; peak = {report['peak_memory']} (GiB)")
    w = max(len(r["row"]) for r in report["rows"])
    print(f"{'check':{w}}  {'status':8} {'median s':>9} {'peak':>7}  result")
    for r in report["rows"]:
        print(f"{r['row']:{w}}  {r['status']:8} {_fmt(r['seconds'], '9.3f'):>9} {_fmt(r['peak_gib'], '7.2f'):>7}  "
              f"{r['value']}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats, smaller budgets")
    ap.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU even where CUDA is available")
    ap.add_argument("--batch", type=int, default=0, help="training clips per step (0: sized to the card)")
    ap.add_argument("--budget", type=float, default=None, help="total seconds (default 470; 360 with --quick)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads without CUDA (1: steady on a busy machine)")
    ap.add_argument("--only", default=None, metavar="LIST",
                    help=f"comma-separated sections to run (of {','.join(s[0] for s in SECTIONS)})")
    ap.add_argument("--inline", action="store_true", help="run the sections in this process (no time limits)")
    ap.add_argument("--json", default=str(HERE / "gpu_check.json"), metavar="PATH", help="where the JSON goes")
    ap.add_argument("--section", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = set((args.only or "").split(",")) - {s[0] for s in SECTIONS} - {""}
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(s[0] for s in SECTIONS)}")
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if dev.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.section:  # a child of `_child`
        rows = run_section(args.section, Sizes(**json.loads(args.sizes)), dev)
        Path(args.out).write_text(json.dumps(rows, default=str))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip the teardown of CUDA, NCCL/gloo and compile workers: the rows are written
    sz = CPU if dev.type == "cpu" else (GPU_QUICK if args.quick else GPU)
    if args.batch:
        sz = sz.with_batch(args.batch)
    args.budget = args.budget or (360.0 if args.quick else 470.0)
    t0 = time.perf_counter()
    rows = run_all(args, sz, dev)
    try:
        import transformers

        hf_version = transformers.__version__
    except ImportError:
        hf_version = None
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "device": rows[0].get("device_name") or dev.type, "cuda": dev.type == "cuda", "torch": torch.__version__,
              "transformers": hf_version, "mode": ("quick" if args.quick else "full") if dev.type == "cuda"
              else "cpu", "sizes": asdict(sz), "budget_s": args.budget, "total_s": time.perf_counter() - t0,
              "peak_memory": peak_kind(dev), "rows": rows}
    print_table(report)
    Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
