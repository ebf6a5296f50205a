"""The extract rows of `gpu_check.py`: `vjepa extract`'s encoder path (`encode_windows` of
`vjepa_cli.infer.extract`: uint8 windows to the device, normalise, encode, mean-pool, back to the CPU) against
`transformers`' `VJEPA2Model` with the same weights and the same input pipeline, then `run_extract` end to end
(decoding included) on a generated video.

The weights are a randomly initialised `VJEPA2Model` saved with `save_pretrained` (ViT-L, 16 frames, 224 px on
the GPU); our side loads that folder with `load_eval_model`, as `vjepa extract --model DIR` does. Features are
compared in fp32 (and in the timed dtype) on two clips. The two models are timed in turn (interleaved rounds,
both on the device); each one's peak memory is taken less the other model's weights.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import make_video  # noqa: E402
from gpu_check_common import Sizes, guarded, median, peak_gib, reset_peak, row, timed  # noqa: E402

from vjepa_cli.config.extract import ExtractConfig, WindowConfig  # noqa: E402
from vjepa_cli.config.model import ModelConfig  # noqa: E402
from vjepa_cli.data.transforms import normalize_clips  # noqa: E402
from vjepa_cli.infer.extract import encode_windows, run_extract  # noqa: E402
from vjepa_cli.infer.model import load_eval_model, to_device_uint8  # noqa: E402

TOL_FP32 = 1e-4  # relative L2 error of the token features in fp32 (TF32 off while comparing)
TOL_LOW = 0.1  # the same in bf16 / fp16: two roundings of every layer apart, a guard against gross errors only


def hf_model(sz: Sizes, tmp: Path):
    """A seeded random `VJEPA2Model` of `sz`'s encoder (a 1-block predictor), saved to `tmp/hf`."""
    import transformers

    d, depth, heads, mlp = ModelConfig(arch=sz.arch, depth=sz.depth).resolved_sizes()
    cfg = transformers.VJEPA2Config(hidden_size=d, num_hidden_layers=depth, num_attention_heads=heads,
                                    mlp_ratio=mlp, crop_size=sz.size, frames_per_clip=sz.frames,
                                    pred_hidden_size=96, pred_num_hidden_layers=1, pred_num_attention_heads=4,
                                    attn_implementation="sdpa")
    torch.manual_seed(0)  # transformers initialises from the global RNG
    model = transformers.VJEPA2Model(cfg).eval()
    model.save_pretrained(tmp / "hf")
    return model, tmp / "hf"


@torch.inference_mode()
def hf_encode(model, clips: np.ndarray, dev: torch.device, dtype: torch.dtype, pool: str) -> torch.Tensor:
    """`encode_windows` for the transformers model: the same transfer and normalisation, its encoder."""
    x = normalize_clips(to_device_uint8(clips, dev), dtype=dtype, channels_last=True)  # (B, 3, T, S, S)
    z = model(pixel_values_videos=x.transpose(1, 2), skip_predictor=True).last_hidden_state  # (B, N, D)
    z = z.float().mean(dim=1) if pool == "mean" else z.float()
    return z.cpu()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@contextlib.contextmanager
def no_tf32():
    """fp32 matmuls and convolutions in full fp32 (cuDNN runs convolutions in TF32 by default)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _gib(model: torch.nn.Module) -> float:
    """GiB of a model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())) / 2**30


def _interleaved(fns: list, others: list[float], dev: torch.device, reps: int) -> tuple[list[list[float]], list[float]]:
    """Time `fns` in turn, `reps` rounds after 2 warm-up rounds -> (seconds per fn, peak GiB per fn). All the
    models stay on the device, so each peak is taken less `others[i]`, the other models' weights."""
    times: list[list[float]] = [[] for _ in fns]
    peaks = [0.0 for _ in fns]
    for i in range(2 + reps):
        for j, fn in enumerate(fns):
            reset_peak(dev)
            t = timed(fn, dev, 0, 1)[0]
            peaks[j] = max(peaks[j], peak_gib(dev) - (others[j] if dev.type == "cuda" else 0.0))
            if i >= 2:
                times[j].append(t)
    return times, peaks


def _free(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def extract_rows(sz: Sizes, dev: torch.device) -> list[dict]:
    from vjepa_cli.runtime import torch_dtype

    dtype = torch_dtype(sz.dtype)
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (sz.extract_batch, sz.frames, sz.size, sz.size, 3), dtype=np.uint8)
    pair = clips[:2]  # (2, T, S, S, 3) for the feature comparison
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        hf, hf_dir = hf_model(sz, tmp)
        with no_tf32():
            ours = load_eval_model(hf_dir, dev, "fp32")
            ref32 = encode_windows(ours.encoder, pair, dev, torch.float32, "none")  # (2, N, D)
            del ours
            hf.to(dev)
            err32 = rel_err(ref32, hf_encode(hf, pair, dev, torch.float32, "none"))
            hf.to("cpu")
        _free(dev)

        ours = load_eval_model(hf_dir, dev, sz.dtype)
        hf.to(dev, dtype)
        err_low = rel_err(encode_windows(ours.encoder, pair, dev, dtype, "none"), hf_encode(hf, pair, dev, dtype, "none"))
        (t_ours, t_hf), (peak_ours, peak_hf) = _interleaved(
            [partial(encode_windows, ours.encoder, clips, dev, dtype, "mean"),
             partial(hf_encode, hf, clips, dev, dtype, "mean")], [_gib(hf), _gib(ours.encoder)], dev, sz.extract_reps)
        del hf
        _free(dev)
        e2e = guarded(["extract: vjepa run_extract end to end"], partial(_end_to_end, sz, dev, tmp, ours, hf_dir))
        del ours
        _free(dev)
    b = sz.extract_batch
    ours_cps, hf_cps = b / median(t_ours), b / median(t_hf)
    same = err32 <= TOL_FP32 and err_low <= (TOL_LOW if dtype != torch.float32 else TOL_FP32)
    common = dict(batch=b, dtype=sz.dtype, arch=sz.arch, frames=sz.frames, size=sz.size)
    return [
        row("extract: vjepa encode_windows", "ok", f"{ours_cps:.1f} clips/s ({ours_cps / hf_cps:.2f}x transformers)",
            median(t_ours), peak_ours, clips_per_s=ours_cps, speedup_vs_transformers=ours_cps / hf_cps,
            times=t_ours, **common),
        row("extract: transformers VJEPA2Model", "ok", f"{hf_cps:.1f} clips/s", median(t_hf), peak_hf,
            clips_per_s=hf_cps, times=t_hf, **common),
        row("extract: features vs transformers", "ok" if same else "failed",
            f"rel. L2 error fp32 {err32:.1e} (<= {TOL_FP32:.0e}), {sz.dtype} {err_low:.1e}",
            rel_err_fp32=err32, rel_err_timed_dtype=err_low, tol_fp32=TOL_FP32, tol_low=TOL_LOW),
        *e2e,
    ]


def _end_to_end(sz: Sizes, dev: torch.device, tmp: Path, model, model_path: Path) -> list[dict]:
    """`run_extract` (decode + resize/crop + encode + write) over a generated video of `sz.e2e_clips` windows."""
    step = 4
    span = (sz.frames - 1) * step + 1
    t = time.perf_counter()
    video = make_video(tmp / "e2e.mp4", span + (sz.e2e_clips - 1) * sz.frames * step, w=sz.video_w, h=sz.video_h)
    gen_s = time.perf_counter() - t
    cfg = ExtractConfig(window=WindowConfig(frames=sz.frames, frame_step=step, size=sz.size),
                        batch_size=sz.extract_batch, device=str(dev), dtype=sz.dtype, workers=2, overwrite=True)
    windows = []

    def once():
        r = run_extract([video], tmp / "e2e.safetensors", cfg, model_path=model_path, model=model)
        windows.append(r.videos[0].windows if r.videos and r.videos[0].status == "ok" else -1)

    reset_peak(dev)
    times = timed(once, dev, 1, sz.e2e_reps)
    peak = peak_gib(dev)
    ok = all(w == sz.e2e_clips for w in windows)
    cps = sz.e2e_clips / median(times)
    return [row("extract: vjepa run_extract end to end", "ok" if ok else "failed",
                f"{cps:.1f} clips/s from a {sz.video_w}x{sz.video_h} H.264 video (decode included)",
                median(times), peak, clips_per_s=cps, windows=windows, times=times, video_generate_s=gen_s)]
