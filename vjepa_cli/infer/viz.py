"""Pictures of what the encoder sees and of what the masks hide.

`vjepa viz`: the first three principal components of the patch features, fitted over the whole video and
mapped to RGB (the usual way to look at self-supervised ViT features, e.g. DINOv2, Oquab et al. 2023),
shown beside the frames. `vjepa viz-masks`: a recipe's context/target masks drawn over a clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.config.extract import Levels, WindowConfig
from vjepa_cli.errors import VjepaError

TARGET_RGB = np.array([230, 40, 40], np.float32)  # target tokens: red tint


def pca_rgb(tokens: torch.Tensor, k: int = 3, max_fit: int = 20000) -> np.ndarray:
    """Project `(M, D)` features on their first `k` principal components, scaled to [0, 1] per component
    (1st-99th percentile). Signs are fixed (largest loading positive) so colours are deterministic."""
    x = tokens.detach().double().reshape(-1, tokens.shape[-1])
    xc = x - x.mean(dim=0)
    fit = xc if len(xc) <= max_fit else xc[torch.linspace(0, len(xc) - 1, max_fit).long()]
    _, _, vh = torch.linalg.svd(fit, full_matrices=False)
    comps = vh[:k]  # (k', D)
    idx = comps.abs().argmax(dim=1)
    comps = comps * torch.sign(comps[torch.arange(len(comps)), idx]).unsqueeze(1)
    proj = (xc @ comps.T).numpy()  # (M, k')
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    out = np.clip((proj - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    if out.shape[1] < k:  # fewer components than channels (tiny inputs)
        out = np.concatenate([out, np.zeros((len(out), k - out.shape[1]))], axis=1)
    return out


def upsample_tokens(colors: np.ndarray, tubelet: int, patch: int) -> np.ndarray:
    """`(T', H', W', 3)` colours in [0, 1] -> uint8 frames `(T'*tubelet, H'*patch, W'*patch, 3)` (nearest)."""
    img = (colors * 255).round().astype(np.uint8)
    return img.repeat(tubelet, 0).repeat(patch, 1).repeat(patch, 2)


def side_by_side(frames: np.ndarray, pca: np.ndarray, gap: int = 4, scale: int = 1) -> np.ndarray:
    """uint8 `(T, H, W, 3)` x2 -> `(T, H*s, (2W+gap)*s, 3)`, sized even for H.264."""
    return panels([frames, pca], gap, scale)


def panels(movies: Sequence[np.ndarray], gap: int = 4, scale: int = 1) -> np.ndarray:
    """uint8 `(T, H, W, 3)` movies placed left to right -> `(T, H*s, (k*W+(k-1)*gap)*s, 3)`, sized even for H.264."""
    t, h, w, _ = movies[0].shape
    out = np.full((t, h, len(movies) * (w + gap) - gap, 3), 255, np.uint8)
    for i, m in enumerate(movies):
        out[:, :, i * (w + gap):i * (w + gap) + w] = m[:, :h, :w]
    out = out.repeat(scale, 1).repeat(scale, 2)
    return out[:, : out.shape[1] // 2 * 2, : out.shape[2] // 2 * 2]


def level_colors(z: torch.Tensor, grid: tuple[int, int, int], n_levels: int) -> list[np.ndarray]:
    """`(W, N, k*D)` tokens of `n_levels` concatenated levels -> per level `(W, T', H', W', 3)` PCA colours,
    each level with its own components (levels live in different feature spaces)."""
    parts = z.unflatten(-1, (n_levels, -1))  # (W, N, k, D)
    return [pca_rgb(parts[:, :, k]).reshape(len(z), *grid, 3) for k in range(n_levels)]


def run_viz(video: str | Path, output: str | Path, wcfg: WindowConfig, model_path: str | Path | None = None,
            device: str | None = None, max_windows: int | None = None, model: Any = None, batch_size: int = 4,
            levels: Levels | None = None, dtype: str = "fp32") -> dict:
    """Encode `video` (or an image) window by window and write frames | PCA colours as mp4 (every frame) or png
    (a strip). `levels` (V-JEPA 2.1): one PCA per level, a row each in the png, a panel each in the mp4;
    None: every level of a 2.1 model, else the default output."""
    from vjepa_cli.data.media import write_video
    from vjepa_cli.infer.model import check_window, load_eval_model
    from vjepa_cli.models.levels import level_blocks, resolve_levels
    from vjepa_cli.runtime import resolve_device

    output = Path(output)
    if output.suffix.lower() not in (".mp4", ".png"):
        raise VjepaError(f"cannot write {output.name}", hint="-o must end in .mp4 or .png")
    dev = resolve_device(device)
    model = model or load_eval_model(model_path, dev, dtype)
    check_window(model, wcfg)
    enc = model.encoder
    lv = resolve_levels(enc, ("all" if getattr(enc, "levels", ()) else ()) if levels is None else levels)
    clips, z, grid, sampled_fps = _encode_windows(model, Path(video), output, wcfg, dev, max_windows, batch_size, lv)
    tub = 1 if clips.shape[1] == 1 else enc.tubelet_size  # an image is one frame, one token step
    pcas = [np.stack([upsample_tokens(c, tub, enc.patch_size) for c in colors])  # (W, T, S, S, 3) per level
            for colors in level_colors(z, grid, max(1, len(lv)))]
    t_used = grid[0] * tub
    clips, pcas = clips[:, :t_used], [p[:, :t_used] for p in pcas]
    scale = max(1, 256 // clips.shape[2])
    if output.suffix.lower() == ".mp4":
        if sampled_fps <= 0:
            raise VjepaError(f"{video} is a still image", hint="write a .png")
        flat = [m.reshape(-1, *m.shape[2:]) for m in [clips, *pcas]]
        write_video(output, panels(flat, scale=scale), max(1, round(sampled_fps)), crf=23, preset="medium")
    else:
        names = [f"level {k} (block {b})" for k, b in zip(lv, level_blocks(enc, lv), strict=True)] or ["PCA"]
        _strip(output, clips, pcas, names, tub, scale)
    res = {"path": str(video), "output": str(output), "windows": len(z), "grid": list(grid)}
    return {**res, "levels": list(lv)} if lv else res


def _strip(output: Path, clips: np.ndarray, pcas: list[np.ndarray], names: list[str], tub: int, scale: int) -> None:
    """PNG: a row of frames (one per time step, up to 16), then one row of PCA colours per level."""
    from vjepa_cli.data.media import write_png
    from vjepa_cli.plot import image_grid

    picks = [(w, t) for w in range(len(clips)) for t in range(0, clips.shape[1], tub)][:16]
    rows = [[clips[w, t] for w, t in picks]] + [[p[w, t] for w, t in picks] for p in pcas]
    labels = [f"w{w} f{t}" for w, t in picks] + [f"{n} w{w} f{t}" if i == 0 else f"w{w} f{t}"
                                                 for n in names for i, (w, t) in enumerate(picks)]
    big = [im.repeat(scale, 0).repeat(scale, 1) for row in rows for im in row]
    write_png(output, image_grid(big, ncols=len(picks), labels=labels))


def _encode_windows(model: Any, video: Path, output: Path, wcfg: WindowConfig, dev: torch.device,
                    max_windows: int | None, batch_size: int, levels: tuple[int, ...] = ()
                    ) -> tuple[np.ndarray, torch.Tensor, tuple, float]:
    """The first `max_windows` windows of `video` (uint8 `(W, T, S, S, 3)`), their tokens `(W, N, D)` (the chosen
    2.1 levels concatenated: `(W, N, k*D)`), the token grid and the sampled frame rate (0 for an image)."""
    from vjepa_cli.data.transforms import normalize_clips
    from vjepa_cli.infer.inputs import VideoJob
    from vjepa_cli.infer.windows import VideoEnded, VideoStarted, WindowBatch, batched_windows
    from vjepa_cli.models.levels import encode_levels

    enc = model.encoder
    frames, tokens, grid, sampled_fps = [], [], None, 0.0
    with torch.inference_mode():
        for ev in batched_windows([VideoJob(0, video, output)], wcfg, int(model.config.img_size), 1, batch_size):
            match ev:
                case VideoStarted(_, opened):
                    sampled_fps = opened.info.fps / opened.step
                case VideoEnded(_, error) if error is not None:
                    raise VjepaError(error)
                case WindowBatch(_, windows):
                    clips = np.stack([w.frames[0] for w in windows])  # (B, T, S, S, 3)
                    x = normalize_clips(torch.from_numpy(clips).to(dev), channels_last=True,
                                        dtype=next(enc.parameters()).dtype)  # (B, 3, T, S, S)
                    grid = enc.token_grid(x)
                    tokens.append(encode_levels(enc, x, levels).float().cpu())  # (B, N, k*D)
                    frames.append(clips)
                    if max_windows and sum(len(f) for f in frames) >= max_windows:
                        break
    if not tokens:
        raise VjepaError(f"{video}: no windows decoded")
    return np.concatenate(frames)[:max_windows], torch.cat(tokens)[:max_windows], grid, sampled_fps


def draw_masks(frames: np.ndarray, grid: tuple[int, int, int], patch: int, tubelet: int,
               pairs: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[str] = ()) -> np.ndarray:
    """Draw (context ids, target ids) pairs over a clip: one row per pair, one column per time step.

    Context tokens are shown as they are, targets tinted red, tokens in neither darkened.
    `frames` is uint8 `(T, H, W, 3)` with H = H'*patch, W = W'*patch.
    """
    from vjepa_cli.plot import draw_text

    t, h, w = grid
    fh, fw = frames.shape[1:3]
    pad, lab = 4, 12
    out = np.full((len(pairs) * (fh + lab + pad) + lab + pad, t * (fw + pad) + pad, 3), 255, np.uint8)
    for s in range(t):
        draw_text(out, pad + s * (fw + pad), 2, f"t{s} (frames {s * tubelet}-{s * tubelet + tubelet - 1})"[: fw // 6])
    for r, (ctx, tgt) in enumerate(pairs):
        state = np.zeros(t * h * w, np.int8)  # 0 neither, 1 context, 2 target
        state[np.asarray(ctx, np.int64)] = 1
        state[np.asarray(tgt, np.int64)] = 2
        state = state.reshape(t, h, w).repeat(patch, 1).repeat(patch, 2)  # (T', H, W)
        y = lab + pad + r * (fh + lab + pad)
        if r < len(labels):
            draw_text(out, pad, y, str(labels[r]))
        for s in range(t):
            img = frames[s * tubelet].astype(np.float32)
            m = state[s][..., None]
            img = np.where(m == 2, 0.35 * img + 0.65 * TARGET_RGB, img)
            img = np.where(m == 0, 0.3 * img, img)
            x = pad + s * (fw + pad)
            out[y + lab:y + lab + fh, x:x + fw] = img.round().astype(np.uint8)
    return out
