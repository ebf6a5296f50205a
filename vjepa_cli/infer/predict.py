"""Future prediction and surprise (Garrido et al. 2025, "Intuitive physics understanding emerges from
self-supervised pretraining on natural videos"; V-JEPA, Bardes et al. 2024).

For each window the encoder sees the tokens of the first C frames (a causal "future" mask), the predictor
predicts the tokens of the remaining frames, and the same encoder run on the whole window gives the actual
features (layer-normed over channels, as the training targets are). Surprise = mean L1 between prediction
and actual over tokens and channels; a video's curve is its sequence over sliding windows. With several
context lengths the curves are combined per window (min, the published code's "filtered" curve, or mean).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_cli.config.extract import SurpriseConfig
from vjepa_cli.data.transforms import normalize_clips
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.inputs import VideoJob, is_image
from vjepa_cli.infer.metrics import peak_ratio
from vjepa_cli.infer.model import load_eval_model, model_record
from vjepa_cli.infer.windows import VideoEnded, VideoStarted, WindowBatch, batched_windows, decode_workers
from vjepa_cli.runtime import resolve_device, torch_dtype


def future_ids(grid: tuple[int, int, int], context_steps: int, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Context ids = every token of the first `context_steps` time steps, targets = the rest: `(B, Kc)`, `(B, Kt)`."""
    from vjepa_cli.data.masks import future_masks

    if not 1 <= context_steps < grid[0]:
        raise VjepaError(f"a context of {context_steps} time step(s) leaves nothing to predict in a {grid[0]}-step window",
                         hint="use a shorter --context or more --frames")
    return future_masks(grid, context_steps, batch, device)


@dataclass(frozen=True)
class Readout:
    """What a predictor reads from its encoder and what its predictions are compared with.

    - V-JEPA 1/2, and 2.1 predictors of one level and the encoder's width: the default output in, the
      (layer-normed) default output of the whole window as the target (`target` "last").
    - 2.1 g/G (4 levels in and out): the hierarchical output in; the target is the hierarchical output of the
      whole window with each level layer-normed on its own, as the 2.1 training targets are ("levels").
    - 2.1 B/L (distilled: they predict the 1664-wide features of the ViT-G teacher, which the encoder does not
      give): the target is the predictor's own context head applied to the whole window as context, i.e. what
      the model says the teacher's features of those tokens are when it sees them ("context-head"); both sides
      are then teacher-space predictions, compared as they come (no extra normalisation).
    """

    hierarchical: bool  # feed the encoder's hierarchical output (L*D wide) to the predictor
    target: str  # "last", "levels" or "context-head"
    levels: int  # levels in the target (per-level layer norm)


def readout(encoder: torch.nn.Module, predictor: torch.nn.Module) -> Readout:
    """How `predictor` is fed from `encoder` and what its output is compared with (see `Readout`)."""
    d, n_levels = encoder.embed_dim, len(getattr(encoder, "levels", ()) or ())
    in_dim, out_dim = getattr(predictor, "in_dim", d), getattr(predictor, "out_dim", d)
    hier = n_levels > 1 and in_dim == n_levels * d
    if in_dim not in (d, n_levels * d):
        raise VjepaError(f"the predictor reads {in_dim}-wide features but the encoder gives {d}"
                         + (f" ({n_levels * d} hierarchical)" if n_levels else ""))
    if hier and out_dim == n_levels * d:
        return Readout(True, "levels", n_levels)
    if out_dim == d:
        return Readout(hier, "last", 1)
    if getattr(predictor, "predictor_proj_context", None) is not None:
        return Readout(hier, "context-head", 1)
    raise VjepaError(f"the predictor predicts {out_dim}-wide features, which this encoder does not give ({d} wide) "
                     "and it has no context head to compare them with")


def level_norm(z: torch.Tensor, levels: int) -> torch.Tensor:
    """Parameter-free LayerNorm of each of the `levels` equal slices of the width: (B, N, L*D) -> same."""
    return F.layer_norm(z.unflatten(-1, (levels, -1)), (z.shape[-1] // levels,)).flatten(-2)


@torch.inference_mode()
def predict_future(encoder: torch.nn.Module, predictor: torch.nn.Module, x: torch.Tensor, context_frames: Sequence[int],
                   mask_index: int = 0, normalize_targets: bool = True,
                   context_encoder: torch.nn.Module | None = None) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], tuple]:
    """Predict the future of clips `x (B, 3, T, H, W)` from each context length (in frames).

    `encoder` gives the actual features; `context_encoder` (default: the same) encodes the context, as the
    online encoder does in training (the published evaluation uses the online encoder for the context and
    the EMA target encoder for the targets). V-JEPA 2.1 models are read as `readout` says.

    Returns `[(predicted (B, Kt, D'), actual (B, Kt, D')) per context length]` and the token grid (T', H', W').
    """
    tub = encoder.tubelet_size
    grid = encoder.token_grid(x)
    ro = readout(encoder, predictor)
    enc_ctx = context_encoder or encoder
    if ro.target == "context-head":  # teacher space: the context head's reading of the whole window
        ids = torch.arange(math.prod(grid), device=x.device).expand(x.shape[0], -1)  # (B, N)
        none = ids[:, :0]  # (B, 0): no targets
        _, full = predictor(enc_ctx(x, hierarchical=ro.hierarchical), ids, none, mask_index=mask_index, grid=grid,
                            return_context=True)  # (B, N, D')
    else:
        full = encoder(x, hierarchical=ro.target == "levels")  # (B, N, D) or (B, N, L*D)
        if normalize_targets:
            full = level_norm(full, ro.levels)
    out = []
    for c in context_frames:
        if c % tub:
            raise VjepaError(f"context length {c} frames is not a multiple of the tubelet size {tub}")
        ctx_ids, tgt_ids = future_ids(grid, c // tub, x.shape[0], x.device)
        ctx = enc_ctx(x, masks=[ctx_ids], hierarchical=ro.hierarchical)  # (B, Kc, D) or (B, Kc, L*D)
        pred = predictor(ctx, ctx_ids, tgt_ids, mask_index=mask_index, grid=grid)  # (B, Kt, D')
        out.append((pred, full[:, ctx_ids.shape[1]:]))
    return out, grid


def l1_per_step(pred: torch.Tensor, target: torch.Tensor, hw: int) -> torch.Tensor:
    """Mean |pred - target| per predicted time step: `(B, Kt, D)` x2 -> `(B, Kt / hw)`."""
    b, kt, d = pred.shape
    return (pred.float() - target.float()).abs().view(b, kt // hw, hw, d).mean(dim=(2, 3))


@dataclass
class SurpriseCurve:
    """Surprise over a video's windows."""

    path: str
    times: np.ndarray  # (W, 2) window start/end seconds
    per_context: dict[int, np.ndarray]  # context frames -> (W,) surprise
    curve: np.ndarray  # (W,) combined over context lengths
    seconds: float = 0.0
    steps: dict[int, np.ndarray] = field(default_factory=dict)  # context -> (W, T'-c) per predicted step

    @property
    def max(self) -> float:
        return float(self.curve.max())

    @property
    def mean(self) -> float:
        return float(self.curve.mean())

    @property
    def peak(self) -> float:
        """max / mean: the surprise peak relative to the video's own level."""
        return peak_ratio(self.curve)

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "windows": len(self.curve), "max": round(self.max, 6), "mean": round(self.mean, 6),
                "peak": round(self.peak, 6),
                "per_context_max": {str(c): round(float(v.max()), 6) for c, v in self.per_context.items()},
                "seconds": round(self.seconds, 3)}


def surprise_curves(model: Any, jobs: list[VideoJob], cfg: SurpriseConfig, device: torch.device,
                    on_windows=None, keep: bool = False) -> tuple[list[SurpriseCurve | str], dict]:
    """Surprise curves of `jobs` (a failed video gives its error message instead of a curve).

    With `keep`, the predicted and actual features of the first context length are returned too
    (in the second value, per video index: {"predicted", "target", "grid"}).
    """
    from vjepa_cli.infer.model import check_window

    check_window(model, cfg.window)
    dtype = torch_dtype(cfg.dtype)
    img_size = int(getattr(model.config, "img_size", 224))
    results: list[SurpriseCurve | str] = [""] * len(jobs)
    kept: dict[int, dict] = {}
    state: dict[str, Any] = {}
    for job in jobs:  # one frame has no future to predict
        if is_image(job.path):
            results[job.index] = f"{job.path} is a still image: predict and surprise need a video"
    videos = [job for job in jobs if not results[job.index]]
    for ev in batched_windows(videos, cfg.window, img_size, decode_workers(cfg.workers, device), cfg.batch_size):
        match ev:
            case VideoStarted():
                state = {"t0": time.perf_counter(), "times": [], "ctx": {c: [] for c in cfg.context_frames},
                         "steps": {c: [] for c in cfg.context_frames}, "pred": [], "tgt": [], "grid": None}
            case WindowBatch(_, windows):
                clips = torch.from_numpy(np.stack([w.frames[0] for w in windows])).to(device)  # (B, T, S, S, 3)
                _score_batch(state, model, normalize_clips(clips, dtype=dtype, channels_last=True), cfg, keep)
                state["times"] += [(w.start, w.end) for w in windows]
                if on_windows:
                    on_windows(len(windows))
            case VideoEnded(job, error) if error is not None:
                results[job.index] = error
            case VideoEnded(job):
                results[job.index] = _curve(job, state, cfg)
                if keep:
                    kept[job.index] = {"predicted": torch.cat(state["pred"]), "target": torch.cat(state["tgt"]),
                                       "grid": state["grid"]}
    return results, kept


def _score_batch(state: dict[str, Any], model: Any, x: torch.Tensor, cfg: SurpriseConfig, keep: bool) -> None:
    """Per-step prediction errors of a batch of clips `x` (B, 3, T, S, S), added to the video's `state`."""
    outs, grid = predict_future(model.encoder, model.predictor, x, cfg.context_frames, cfg.mask_index,
                                cfg.normalize_targets, getattr(model, "context_encoder", None))
    hw = grid[1] * grid[2]
    for c, (p, t) in zip(cfg.context_frames, outs, strict=True):
        steps = l1_per_step(p, t, hw).cpu()  # (B, T'-c)
        state["steps"][c].append(steps)
        state["ctx"][c].append(steps.mean(dim=1))  # equal tokens per step: mean of steps = mean of all
    if keep:
        state["pred"].append(outs[0][0].float().cpu())
        state["tgt"].append(outs[0][1].float().cpu())
        state["grid"] = grid


def _curve(job: VideoJob, state: dict[str, Any], cfg: SurpriseConfig) -> SurpriseCurve:
    """One video's surprise curve from its per-window errors (combined over the context lengths)."""
    per = {c: torch.cat(v).double().numpy() for c, v in state["ctx"].items()}
    stack = np.stack(list(per.values()))
    curve = stack.min(axis=0) if cfg.combine == "min" else stack.mean(axis=0)
    return SurpriseCurve(str(job.path), np.asarray(state["times"], np.float64), per, curve,
                         time.perf_counter() - state["t0"], {c: torch.cat(v).numpy() for c, v in state["steps"].items()})


def open_model(model_path: str | Path | None, cfg: SurpriseConfig,
               context_model: str | Path | None = None) -> tuple[Any, torch.device, Path]:
    """The model (with its predictor) and, optionally, another file's encoder for the context
    (e.g. `vjepa export RUN --which context`), which must have the same architecture."""
    from vjepa_cli.config._load import to_dict
    from vjepa_cli.infer.model import require_model_path

    device = resolve_device(cfg.device)
    path = require_model_path(model_path)
    model = load_eval_model(path, device, cfg.dtype, need_predictor=True)
    if context_model is not None:
        ctx = load_eval_model(require_model_path(context_model), device, cfg.dtype)
        if to_dict(ctx.config.resolve()) != to_dict(model.config.resolve()):
            raise VjepaError(f"{context_model} has another architecture than {path}",
                             hint="export both encoders from the same training run")
        model.context_encoder = ctx.encoder
    return model, device, path


def run_predict(video: str | Path, output: str | Path, cfg: SurpriseConfig, model_path: str | Path | None = None,
                model: Any = None, on_windows=None, context_model: str | Path | None = None) -> dict[str, Any]:
    """`vjepa predict`: predicted and actual future features of every window of `video` (first context length)."""
    from vjepa_cli import __version__
    from vjepa_cli.io.tensors import save_tensors

    if model is None:
        model, device, model_path = open_model(model_path, cfg, context_model)
    else:
        device = resolve_device(cfg.device)
    job = VideoJob(0, Path(video), Path(output))
    (res,), kept = surprise_curves(model, [job], cfg, device, on_windows=on_windows, keep=True)
    if isinstance(res, str):
        raise VjepaError(res)
    c = cfg.context_frames[0]
    k = kept[0]
    t, h, w = k["grid"]
    n_ctx = c // model.encoder.tubelet_size * h * w
    tensors = {
        "predicted": k["predicted"], "target": k["target"], "error": torch.from_numpy(res.steps[c]),
        "surprise": torch.from_numpy(res.per_context[c]).float(), "timestamps": torch.from_numpy(res.times),
        "context_ids": torch.arange(n_ctx), "target_ids": torch.arange(n_ctx, t * h * w),
    }
    meta = {"format": "vjepa-prediction/1", "vjepa_version": __version__, **model_record(model, Path(model_path or "")),
            "context_frames": c, "grid": [t, h, w], "frames": cfg.window.frames, "source": str(Path(video).resolve()),
            "normalize_targets": cfg.normalize_targets, "mask_index": cfg.mask_index, "windows": len(res.curve),
            "target": readout(model.encoder, model.predictor).target}
    save_tensors(output, tensors, meta)
    return {"path": str(video), "output": str(output), "windows": len(res.curve), "context_frames": c,
            "mean_error": round(float(res.per_context[c].mean()), 6), "seconds": round(res.seconds, 3)}
