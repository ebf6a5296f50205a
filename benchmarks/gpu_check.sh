#!/usr/bin/env bash
# GPU readiness check (issue 19): prints one table and writes benchmarks/gpu_check.json (see benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh                # a CUDA GPU: ViT-L 16x224 bf16, under 8 minutes
#   bash benchmarks/gpu_check.sh --quick        # under 6 minutes
#   bash benchmarks/gpu_check.sh --json out.json --batch 16
# Without CUDA it runs tiny sizes on the CPU. The Python is $PYTHON, else the repository's .venv, else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"; else py="$(command -v python3 || command -v python)"; fi
fi
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # vjepa_cli from this checkout, installed or not
exec "$py" "$here/gpu_check.py" "$@"
