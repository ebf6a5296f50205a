"""Run every benchmark at small sizes, one after the other, and write one JSON and one Markdown summary.

    python benchmarks/run_all.py                 # -> benchmarks/results.json, benchmarks/results.md
    python benchmarks/run_all.py --full          # the sizes the issues' targets are stated at (slow on a CPU)

Each benchmark runs in its own process (so thread settings and memory do not leak between them) and
prints a table and a final JSON line; the Markdown keeps each table as printed. Run on a quiet machine:
the load average is recorded before and after each benchmark. The side-by-side benchmarks compare against peers
that are not dependencies: `bench_official.py` needs `--official-root` or `$VJEPA_OFFICIAL_ROOT` (a copy of
facebookresearch/jepa), `bench_pyjepa.py` needs `pip install pyjepa`, `bench_hf_encoder.py` needs transformers;
without them they report "skipped".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def suite(full: bool, tmp: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of every benchmark; small sizes unless `full`."""
    model_train = ["--mode", "train", "--steps", "5" if full else "3"]
    arch = "vit_base" if full else "vit_small"
    infer = ["--arch", arch, "--frames", "16", "--size", "224", "--batch", "1", "--mode", "infer",
             "--steps", "3" if full else "2"]
    return [
        ("model: train step vit_small 8x128 b4", ["bench_model.py", *model_train, "--json", str(tmp / "m1.json")]),
        (f"model: encoder inference {arch} 16x224 b1", ["bench_model.py", *infer, "--json", str(tmp / "m2.json")]),
        ("train step: packed vs per-mask", ["bench_step.py", *(["--repeats", "5"] if full else
                                             ["--arch", "vit_tiny", "--frames", "8", "--size", "64", "--batch", "2", "--pred-depth", "4", "--pred-dim", "192",
                                              "--repeats", "3", "--warmup", "1"]), "--json", str(tmp / "s.json")]),
        ("train loop vs bare step", ["bench_train.py", "--steps", "8" if full else "4", "--json", str(tmp / "t.json")]),
        ("data: dataset vs raw decord", ["bench_data.py", "--clips", "30" if full else "8",
                                         "--workdir", str(tmp / "data")]),
        ("extract: end to end vs bare vs transformers",
         ["bench_extract.py", *([] if full else ["--arch", "vit_small", "--clips", "4", "--reps", "1",
                                                 "--long-minutes", "1"])]),
        ("extract: folder of videos vs the transformers recipe",
         ["bench_folder.py", *([] if full else ["--small"]), "--jobs", "1,2", "--workdir", str(tmp / "folder"),
          "--json", str(tmp / "folder.json")]),
        ("gpu check (tiny CPU sizes; --full: the GPU check)", ["gpu_check.py", *([] if full else ["--cpu"]),
                                                 "--json", str(tmp / "gpu.json")]),
        # Side by side (each exits 0 with {"skipped": ...} when its peer is not installed / not given):
        ("side by side: train step vs official code",
         ["bench_official.py", *(["--repeats", "7"] if full else ["--arch", "vit_tiny", "--frames", "4", "--size", "64",
                                                                 "--batch", "2", "--repeats", "2", "--mem-steps", "1"])]),
        ("side by side: train step vs pyjepa",
         ["bench_pyjepa.py", *(["--repeats", "7"] if full else ["--arch", "vit_tiny", "--frames", "4", "--size", "64",
                                                               "--batch", "2", "--repeats", "2", "--mem-steps", "1"])]),
        ("side by side: encoder inference vs transformers",
         ["bench_hf_encoder.py", *([] if full else ["--archs", "vit_small", "--frames", "8", "--size", "128",
                                                   "--repeats", "2", "--mem-steps", "1"])]),
        ("side by side: encoder inference vs transformers, bf16",
         ["bench_hf_encoder.py", "--dtype", "bf16", *([] if full else ["--archs", "vit_small", "--frames", "8",
                                                                      "--size", "128", "--repeats", "2",
                                                                      "--mem-steps", "1"])]),
        ("probe: feature cache vs on the fly",
         ["bench_probe.py", "--task", "synth-shapes", *(["--train", "300", "--val", "200", "--epochs", "10"] if full
                                                         else ["--train", "32", "--val", "32", "--epochs", "2"])]),
    ]


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the target sizes (vit_base 16x224 inference etc.)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="output stem (.json and .md)")
    ap.add_argument("--only", default=None, help="run only benchmarks whose name contains this text")
    args = ap.parse_args()
    results, md = [], ["# vjepa benchmarks", "", f"python {sys.version.split()[0]}, {'full' if args.full else 'small'} sizes", ""]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, argv in suite(args.full, tmp):
            if args.only and args.only not in name:
                continue
            before, t0 = load(), time.perf_counter()
            proc = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], capture_output=True, text=True)
            secs, after = time.perf_counter() - t0, load()
            data = None
            json_path = next((Path(a) for a in argv if a.endswith(".json")), None)
            if json_path is not None and json_path.exists():
                data = json.loads(json_path.read_text())
            else:
                lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
                data = json.loads(lines[-1]) if lines else None
            entry = {"name": name, "argv": argv, "returncode": proc.returncode, "seconds": round(secs, 1),
                     "load_before": round(before, 2), "load_after": round(after, 2), "result": data}
            results.append(entry)
            table = "\n".join(ln for ln in proc.stdout.splitlines() if not ln.startswith("{"))
            md += [f"## {name}", "", f"`python benchmarks/{' '.join(argv)}` - exit {proc.returncode}, {secs:.0f} s, "
                   f"load {before:.1f} -> {after:.1f}", "", "```", table.strip() or proc.stderr.strip()[-2000:], "```", ""]
            print(f"{name}: exit {proc.returncode} in {secs:.0f} s", flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(md))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
