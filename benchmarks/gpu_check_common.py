"""What the sections of `gpu_check.py` share: the sizes, the cards' bf16 peaks, timing and peak memory."""

from __future__ import annotations

import gc
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets, with fp32 accumulation
# (what PyTorch uses: on GeForce cards that is half the fp16-accumulate figure). First match of the lower-cased
# device name wins, so the specific spellings come before the generic ones.
BF16_PEAKS: list[tuple[tuple[str, ...], float, str]] = [
    (("h100", "pcie"), 756.0, "H100 PCIe"),
    (("h100", "nvl"), 835.0, "H100 NVL"),
    (("h100",), 989.0, "H100 SXM"),
    (("h200",), 989.0, "H200"),
    (("gh200",), 989.0, "GH200"),
    (("b200",), 2250.0, "B200"),
    (("a100",), 312.0, "A100"),
    (("a800",), 312.0, "A800"),
    (("l40s",), 362.0, "L40S"),
    (("l40",), 181.0, "L40"),
    (("l4",), 121.0, "L4"),
    (("a10g",), 70.0, "A10G"),
    (("a10",), 125.0, "A10"),
    (("rtx 6000 ada",), 364.0, "RTX 6000 Ada"),
    (("rtx a6000",), 155.0, "RTX A6000"),
    (("4090",), 165.0, "RTX 4090"),
    (("3090",), 71.0, "RTX 3090"),
]


def bf16_peak(device_name: str) -> tuple[float | None, str | None]:
    """(dense bf16 TFLOP/s, the card it was matched as) for a `torch.cuda.get_device_name`, or (None, None)."""
    name = device_name.lower()
    for keys, peak, label in BF16_PEAKS:
        if all(k in name for k in keys):
            return peak, label
    return None, None


@dataclass(frozen=True)
class Sizes:
    """Model and run sizes of one check (the GPU ones at ViT-L 16x224, the CPU ones tiny)."""

    arch: str = "vit_large"
    depth: int | None = None  # None: the preset's
    frames: int = 16
    size: int = 224
    batch: int = 0  # training clips per step; 0 = sized to the card
    pred_depth: int = 12
    pred_dim: int = 384
    warmup: int = 3  # untimed steps (the compiled run compiles in the first)
    steps: int = 8  # timed steps (median reported)
    fsdp_steps: int = 3
    extract_batch: int = 16
    extract_reps: int = 5
    e2e_clips: int = 48  # windows of the generated video read end to end by run_extract
    e2e_reps: int = 2
    video_w: int = 320
    video_h: int = 240
    dtype: str = "bf16"  # the training autocast / extract model dtype

    def with_batch(self, batch: int) -> Sizes:
        return replace(self, batch=batch)


GPU = Sizes()
GPU_QUICK = Sizes(warmup=2, steps=4, fsdp_steps=2, extract_reps=3, e2e_clips=24, e2e_reps=1)
CPU = Sizes(arch="vit_tiny", depth=2, frames=8, size=64, batch=2, pred_depth=1, pred_dim=48, warmup=1, steps=2,
            fsdp_steps=1, extract_batch=2, extract_reps=2, e2e_clips=2, e2e_reps=1, video_w=96, video_h=64,
            dtype="fp32")


def auto_batch(total_gib: float) -> int:
    """Training clips per step for a card with `total_gib` of memory at ViT-L 16x224 bf16: about 12 GiB for
    weights, optimizer state, target and workspace, about 2.5 GiB of activations per clip (an estimate; the
    step halves the batch on out-of-memory), at most 32, a multiple of 4 from 4 up."""
    b = int((total_gib - 12) / 2.5)
    b = min(32, b)
    return max(1, b // 4 * 4 if b >= 4 else b)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gib(dev: torch.device) -> float:
    """torch.cuda.max_memory_allocated since the last `reset_peak` on CUDA; on CPU the process's peak RSS."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def peak_kind(dev: torch.device) -> str:
    return "torch.cuda.max_memory_allocated" if dev.type == "cuda" else "process peak RSS"


def timed(fn: Callable[[], object], dev: torch.device, warmup: int, reps: int) -> list[float]:
    """Seconds of each of `reps` calls of `fn` after `warmup` untimed ones, synchronised on CUDA."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        out.append(time.perf_counter() - t)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def row(name: str, status: str, value: str, seconds: float | None = None, peak: float | None = None,
        **detail) -> dict:
    """One table row: `status` ok / check / skipped / failed / timeout; `value` the result in words;
    `seconds` the timed quantity's median; `peak` GiB beside it; `detail` the numbers for the JSON."""
    return {"row": name, "status": status, "value": value, "seconds": seconds, "peak_gib": peak, **detail}


def guarded(names: list[str], fn: Callable[[], list[dict]]) -> list[dict]:
    """`fn()`'s rows, or one "failed" row per name with the exception's first line (the other rows of the
    section survive a failure of this part)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001  (any failure is a row of the table)
        text = (str(e).strip().splitlines() or [""])[0][:200]
        return [row(n, "failed", f"failed: {type(e).__name__}: {text}") for n in names]
