"""The two sides of bench_folder.py, each run once per child process (so peak resident memory is its own):

    python folder_sides.py ours VIDEO_DIR MODEL OUT_DIR [DTYPE [JOBS]]
    python folder_sides.py hf   VIDEO_DIR HF_DIR OUT_DIR [DTYPE]

ours: `run_extract` (what `vjepa extract VIDEO_DIR -o OUT_DIR --model MODEL` runs) with the command's defaults,
after the command's start-up (`keep_freed_memory`).
Its stages are timed from outside by wrapping module functions (nothing in the library changes): decode (PyAV
decode + RGB conversion), resize/crop, normalise, model and write, and the main thread's wait for decoded
windows. On the CPU the command decodes in the main thread between forwards (its default `--workers 0`), so
decode and resize/crop are part of that wait; with decoding threads they run beside the model.

hf: the recipe a `transformers` user writes, one video at a time: PyAV decode of the window frames (the
`read_video_pyav` pattern of the transformers docs; torchcodec, which the V-JEPA 2 model card uses, does not load
on this machine), `VJEPA2VideoProcessor`, `VJEPA2Model.get_vision_features` on all windows of the video, mean over
tokens, `safetensors.torch.save_file`. Windows: the frame indices `vjepa extract` takes by default (16 frames,
every 4th, back to back, plus a last window ending at the final frame), computed here the way a user would.

With JOBS > 1 (`vjepa extract -j JOBS`) the videos go to that many processes that load the model themselves,
inside the clock (this process extracts the first share itself; its stages are the ones timed) and the peak
resident memory is this process's plus the largest child's times JOBS - 1.

Prints one JSON line: seconds end to end (model loaded beforehand), stage seconds, resident memory.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TIMES: dict[str, float] = defaultdict(float)


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb(jobs: int = 1) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return own + ((jobs - 1) * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if jobs > 1 else 0.0)


def _timed(name: str, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES[name] += time.perf_counter() - t
    return wrapper


def _timed_iter(name: str, fn):
    """Wrap a generator function: the time spent producing each item counts for `name`."""
    def wrapper(*a, **k):
        it = iter(fn(*a, **k))
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                TIMES[name] += time.perf_counter() - t
                return
            TIMES[name] += time.perf_counter() - t
            yield item
    return wrapper


def instrument_ours() -> None:
    """Stage timers around the library's own functions (patched from outside, for this process only)."""
    import vjepa_cli.data.media.windows as mw
    import vjepa_cli.infer.extract as ex

    mw._stream_pyav = _timed_iter("decode", mw._stream_pyav)
    if hasattr(mw, "resize_short"):  # frames resized as they are decoded (inside "decode": taken out after)
        mw.resize_short = _timed("resize", mw.resize_short)
        mw.cut_views = _timed("crop", mw.cut_views)
    else:  # older library: whole windows resized and cropped after decoding
        mw.crop_views = _timed("resize", mw.crop_views)
    ex.normalize_clips = _timed("normalise", ex.normalize_clips)
    ex.encode_levels = _timed("model", ex.encode_levels)
    ex.save_tensors = _timed("write", ex.save_tensors)
    ex.stream_windows = _timed_iter("wait_for_decode", ex.stream_windows)


def run_ours(videos: Path, model_path: Path, out: Path, dtype: str = "fp32", jobs: int = 1) -> dict:
    import torch

    import vjepa_cli
    from vjepa_cli.allocator import keep_freed_memory
    from vjepa_cli.config.extract import ExtractConfig
    from vjepa_cli.infer.extract import run_extract
    from vjepa_cli.runtime import torch_dtype

    keep_freed_memory()  # what the `vjepa` command does at start-up
    model = vjepa_cli.load_model(model_path, device=torch.device("cpu"), dtype=torch_dtype(dtype))  # as extract --dtype
    instrument_ours()
    base = rss_mb()
    t = time.perf_counter()
    r = run_extract([videos], out, ExtractConfig(overwrite=True, dtype=dtype, jobs=jobs), model_path=model_path,
                    model=model)
    total = time.perf_counter() - t
    assert not r.failed, r.failed
    if "crop" in TIMES:
        TIMES["decode"] -= TIMES["resize"]
    return {"total_s": total, "windows": sum(v.windows for v in r.videos), "rss_after_load_mb": base, "jobs": jobs}


def user_windows(num_frames: int, frames: int = 16, step: int = 4) -> list[list[int]]:
    """`vjepa extract`'s default windows, as a user would write them: back to back, plus a tail window."""
    span = (frames - 1) * step + 1
    if num_frames <= span:
        return [[min(i * step, num_frames - 1) for i in range(frames)]]
    starts = list(range(0, num_frames - span + 1, frames * step))
    if starts[-1] + span < num_frames:
        starts.append(num_frames - span)
    return [[s + i * step for i in range(frames)] for s in starts]


def read_video_pyav(path: Path, wanted: set[int]) -> dict:
    """The transformers docs' PyAV pattern: decode from the start, keep the wanted frames as RGB arrays."""
    import av

    frames = {}
    last = max(wanted)
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i > last:
                break
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
    return frames


def import_torchvision() -> str:
    """`VJEPA2VideoProcessor` needs torchvision. The only torchvision wheels the registry has for torch 2.13 are
    CUDA builds whose C++ ops cannot load with the CPU torch; its Python resize / crop / normalise (all the
    processor uses, plain torch ops) work once the registration of those C++ ops' meta kernels is skipped."""
    try:
        import torchvision  # noqa: F401

        return "torchvision"
    except ModuleNotFoundError:
        return "no torchvision"  # the processor then says it needs it
    except (ImportError, RuntimeError, OSError):
        for k in [k for k in sys.modules if k.startswith("torchvision")]:
            del sys.modules[k]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision  # noqa: F401

        return "torchvision without its C++ ops (CUDA wheel on a CPU torch)"


def run_hf(videos: Path, hf_dir: Path, out: Path, dtype: str = "fp32") -> dict:
    import av
    import numpy as np
    import torch
    from safetensors.torch import save_file

    how = import_torchvision()
    from transformers import VJEPA2Model, VJEPA2VideoProcessor

    from vjepa_cli.runtime import torch_dtype

    dt = torch_dtype(dtype)
    model = VJEPA2Model.from_pretrained(hf_dir, dtype=dt).eval()
    processor = VJEPA2VideoProcessor(crop_size=model.config.crop_size)
    base = rss_mb()
    out.mkdir(parents=True, exist_ok=True)
    n_windows = 0
    t0 = time.perf_counter()
    for path in sorted(videos.glob("*.mp4")):
        t = time.perf_counter()
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            n, fps = s.frames, float(s.average_rate)
        windows = user_windows(n)
        frames = read_video_pyav(path, {i for w in windows for i in w})
        clips = [np.stack([frames[i] for i in w]) for w in windows]  # (T, H, W, 3) uint8 each
        TIMES["decode"] += time.perf_counter() - t
        t = time.perf_counter()
        inputs = processor(clips, return_tensors="pt")  # pixel_values_videos (W, T, 3, S, S)
        TIMES["resize_normalise"] += time.perf_counter() - t
        t = time.perf_counter()
        with torch.inference_mode():
            feats = model.get_vision_features(inputs["pixel_values_videos"].to(dt)).mean(dim=1).float()  # (W, D)
        TIMES["model"] += time.perf_counter() - t
        t = time.perf_counter()
        times = torch.tensor([[w[0] / fps, (w[-1] + 1) / fps] for w in windows], dtype=torch.float64)
        save_file({"features": feats.contiguous(), "timestamps": times}, str(out / f"{path.stem}.safetensors"))
        TIMES["write"] += time.perf_counter() - t
        n_windows += len(windows)
    return {"total_s": time.perf_counter() - t0, "windows": n_windows, "rss_after_load_mb": base,
            "processor": how}


def main() -> None:
    side, videos, model, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    dtype = sys.argv[5] if len(sys.argv) > 5 else "fp32"
    jobs = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    res = run_ours(videos, model, out, dtype, jobs) if side == "ours" else run_hf(videos, model, out, dtype)
    res.update(side=side, dtype=dtype, stages=dict(TIMES), peak_rss_mb=peak_mb(jobs),
               threads=__import__("torch").get_num_threads())
    print(json.dumps(res))


if __name__ == "__main__":
    main()
