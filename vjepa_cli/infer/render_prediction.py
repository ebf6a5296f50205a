"""`vjepa predict / surprise --decoder`: draw what the model predicted (see `infer.decoded` for the pictures).

- predict: from the prediction file just written (predicted and actual future features per window, the
  per-step errors, the grid) and the video's windows read again; up to `max_windows` windows, evenly spaced.
- surprise: for each video, its most surprising window, predicted again from the context length that
  scored it (with `--combine min`, the one whose error is the window's surprise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.config.extract import SurpriseConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.decoded import Prediction, decode_features, write_picture

SAMPLES = 3  # rows drawn for a generative decoder


def open_decoder(path: str | Path, device: torch.device | str = "cpu"):
    """The decoder file at `path`, on `device`."""
    from vjepa_cli.models.decoder import load_decoder

    path = Path(path)
    if not path.is_file():
        raise VjepaError(f"decoder file not found: {path}", hint="train one with `vjepa decoder train`")
    return load_decoder(path, device)


def check_fits(decoder, model_config: dict | Any, width: int, decoder_path: Path, model_path: str | Path) -> None:
    """The decoder must read this model's features (width, patch, tubelet, frame size)."""
    from vjepa_cli.config._load import to_dict
    from vjepa_cli.models.decoder import check_decoder_fits

    mc = model_config if isinstance(model_config, dict) else to_dict(model_config)
    check_decoder_fits(decoder, width, int(mc["patch_size"]), int(mc["tubelet_size"]), int(mc["img_size"]),
                       decoder_path, model_path)


def open_model_with_decoder(model_path: str | Path | None, cfg: SurpriseConfig, context_model: str | Path | None,
                            decoder_path: str | Path) -> tuple[Any, Path]:
    """The model (as `vjepa predict` opens it) after checking, before any work, that the decoder reads it."""
    from vjepa_cli.infer.predict import open_model

    model, _, path = open_model(model_path, cfg, context_model)
    check_fits(open_decoder(decoder_path), model.config, _width(model), Path(decoder_path), path)
    return model, path


def window_frames(video: str | Path, cfg: SurpriseConfig, img_size: int, wanted: set[int]) -> dict[int, np.ndarray]:
    """The frames uint8 `(T, S, S, 3)` of windows `wanted` of `video`, cut exactly as the scoring pass cut them."""
    from vjepa_cli.infer.inputs import VideoJob
    from vjepa_cli.infer.windows import VideoEnded, WindowDecoded, video_events

    out: dict[int, np.ndarray] = {}
    i = 0
    for ev in video_events(VideoJob(0, Path(video), Path()), cfg.window, img_size):
        match ev:
            case WindowDecoded(_, w):
                if i in wanted:
                    out[i] = w.frames[0]
                i += 1
            case VideoEnded(_, error) if error is not None:
                raise VjepaError(error)
    return out


def _prediction(decoder, frames: np.ndarray, context: int, pred: torch.Tensor, target: torch.Tensor,
                errors: np.ndarray, title: str, samples: int) -> Prediction:
    """Decode one window's predicted `(Kt, D)` and actual `(Kt, D)` future features."""
    dp = decode_features(decoder, pred[None], samples)[:, 0]  # (S, Tf, H, W, 3)
    dt = decode_features(decoder, target[None], 1)[0, 0]  # (Tf, H, W, 3)
    labels = ("predicted",) if len(dp) == 1 else tuple(f"predicted {k + 1}" for k in range(len(dp)))
    return Prediction(frames, context, dt, dp, np.asarray(errors, np.float64), decoder.cfg.tubelet_size, title,
                      labels)


def render_predict(prediction_file: str | Path, decoder_path: str | Path, render: str | Path,
                   cfg: SurpriseConfig, max_windows: int = 4, samples: int = SAMPLES) -> dict[str, Any]:
    """Draw the windows of a `vjepa predict` output file with `decoder_path`; returns what was written."""
    from vjepa_cli.io.tensors import load_tensors, meta_json

    tensors, meta = load_tensors(prediction_file)
    decoder = open_decoder(decoder_path)
    pred, target = tensors["predicted"], tensors["target"]  # (W, Kt, D)
    check_fits(decoder, meta_json(meta, "model_config", {}), pred.shape[-1], Path(decoder_path), meta.get("model", "?"))
    n = pred.shape[0]
    picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, max_windows))})
    frames = window_frames(meta["source"], cfg, decoder.cfg.img_size, set(picks))
    c = int(meta_json(meta, "context_frames"))
    times = tensors["timestamps"].numpy()
    preds = [_prediction(decoder, frames[i], c, pred[i], target[i], tensors["error"][i].numpy(),
                         f"window {i} ({times[i, 0]:.2f}-{times[i, 1]:.2f} s)", samples) for i in picks if i in frames]
    write_picture(render, preds)
    return {"render": str(render), "windows": [i for i in picks if i in frames]}


def _context_of(curve, i: int, combine: str) -> int:
    """The context length whose error is the combined surprise of window `i` (min), else the first."""
    if combine == "min":
        return min(curve.per_context, key=lambda c: float(curve.per_context[c][i]))
    return next(iter(curve.per_context))


def surprise_prediction(model: Any, decoder, curve, cfg: SurpriseConfig, samples: int = SAMPLES) -> Prediction:
    """The most surprising window of a scored video (`curve`), predicted again and decoded."""
    from vjepa_cli.data.transforms import normalize_clips
    from vjepa_cli.infer.predict import l1_per_step, predict_future

    i = int(np.argmax(curve.curve))
    c = _context_of(curve, i, cfg.combine)
    frames = window_frames(curve.path, cfg, decoder.cfg.img_size, {i})[i]
    dev = next(model.encoder.parameters()).device
    x = normalize_clips(torch.from_numpy(frames[None]).to(dev), channels_last=True)  # (1, 3, T, S, S)
    (p, t), = predict_future(model.encoder, model.predictor, x, [c], cfg.mask_index, cfg.normalize_targets,
                             getattr(model, "context_encoder", None))[0]
    grid = model.encoder.token_grid(x)
    errors = l1_per_step(p, t, grid[1] * grid[2])[0].cpu().numpy()
    title = f"{Path(curve.path).name}: most surprising window {i} ({curve.times[i, 0]:.2f}-{curve.times[i, 1]:.2f} s)"
    return _prediction(decoder, frames, c, p[0].float().cpu(), t[0].float().cpu(), errors, title, samples)


def render_surprise(model: Any, curves: list, decoder_path: str | Path, cfg: SurpriseConfig,
                    outputs: list[Path], samples: int = SAMPLES) -> list[str | None]:
    """Draw the most surprising window of each scored video (`curves` from `vjepa surprise`, a string for a
    failed video) to its entry of `outputs`; returns the path written per video (None for a failed one)."""
    decoder = open_decoder(decoder_path, next(model.encoder.parameters()).device)
    check_fits(decoder, model.config, _width(model), Path(decoder_path), "the model")
    written: list[str | None] = []
    for curve, out in zip(curves, outputs, strict=True):
        if isinstance(curve, str):
            written.append(None)
            continue
        write_picture(out, [surprise_prediction(model, decoder, curve, cfg, samples)])
        written.append(str(out))
    return written


def surprise_render_paths(rows: list[dict], output: Path, render: Path | None) -> list[Path]:
    """Where each video's picture goes: `render` for one video; else `render` with the video's name before the
    suffix; without `render`, `<csv>.decoded.png` beside each video's CSV."""
    paths = []
    for row in rows:
        csv = Path(row.get("csv") or output / Path(row["path"]).name)
        if render is None:
            paths.append(csv.with_suffix(".decoded.png"))
        elif len(rows) == 1:
            paths.append(render)
        else:
            paths.append(render.with_name(f"{render.stem}.{Path(row['path']).stem}{render.suffix}"))
    return paths


def _width(model: Any) -> int:
    cfg = model.config.resolve() if hasattr(model.config, "resolve") else model.config
    return int(cfg.embed_dim)
