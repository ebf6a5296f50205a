"""Inputs of bench_folder.py, made once and cached: a folder of H.264 clips with natural-ish motion, and one
random-init V-JEPA 2 encoder saved both as a `transformers` directory and as our model file (converted from it
by `vjepa convert`'s library function, so both sides run the same weights).

Content: a smooth multi-octave luma/chroma texture (sky, ground, blotches) seen through a slowly panning and
zooming camera, a few textured discs moving and bouncing in front of it, a slow brightness drift, and mild
sensor grain; encoded with x264 (`veryfast`, crf 23, the default keyframe interval of 250 frames, yuv420p),
which gives web-like bitrates (about 2-4 Mbit/s at 720p). Frames are generated directly in YUV 4:2:0.
"""

from __future__ import annotations

import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _octaves(rng: np.random.Generator, h: int, w: int, base: int, n: int, keep: float = 0.5) -> np.ndarray:
    """Smooth noise `(h, w)` in about [-1, 1]: `n` octaves of bicubically upsampled random grids."""
    out = torch.zeros(1, 1, h, w)
    amp, cells = 1.0, base
    for _ in range(n):
        g = torch.from_numpy(rng.standard_normal((1, 1, cells, max(2, cells * w // h))).astype(np.float32))
        out += amp * F.interpolate(g, size=(h, w), mode="bicubic", align_corners=False)
        amp, cells = amp * keep, cells * 2
    return (out[0, 0] / 1.5).clamp(-1, 1).numpy()


def _discs(rng: np.random.Generator, h: int, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        r = int(rng.uniform(0.06, 0.16) * h)
        yy, xx = np.mgrid[-r:r, -r:r]
        mask = (yy ** 2 + xx ** 2) < r ** 2
        tex = 128 + 60 * _octaves(rng, 2 * r, 2 * r, 3, 3)
        out.append({"r": r, "mask": mask, "tex": tex.astype(np.float32), "u": rng.uniform(60, 200),
                    "v": rng.uniform(60, 200), "pos": rng.uniform(0.2, 0.8, 2), "vel": rng.uniform(-0.012, 0.012, 2)})
    return out


def _frames(seed: int, n: int, w: int, h: int):
    """Yield `n` uint8 YUV 4:2:0 frames `(3h/2, w)`."""
    rng = np.random.default_rng(seed)
    H, W = int(h * 1.6), int(w * 1.6)  # the scene is larger than the view: the camera pans over it
    luma = (110 + 70 * _octaves(rng, H, W, 4, 7, 0.6) - 25 * np.linspace(-1, 1, H, dtype=np.float32)[:, None])
    grain = rng.normal(0, 4.0, (4, h + 64, w + 64)).astype(np.float32)  # sensor grain, shifted every frame
    cu = 128 + 30 * _octaves(rng, H // 2, W // 2, 3, 3)
    cv = 128 + 30 * _octaves(rng, H // 2, W // 2, 3, 3)
    discs = _discs(rng, h, 4)
    pan = rng.uniform(0, 2 * np.pi, 2)
    for t in range(n):
        s = t / 30.0
        oy = int((H - h) * (0.5 + 0.45 * np.sin(0.21 * s + pan[0])))
        ox = int((W - w) * (0.5 + 0.45 * np.sin(0.13 * s + pan[1])))
        oy, ox = oy - oy % 2, ox - ox % 2
        gy, gx = rng.integers(0, 64, 2)
        y = luma[oy:oy + h, ox:ox + w] * np.float32(1 + 0.08 * np.sin(0.5 * s))  # (h, w) slow brightness drift
        y += grain[t % 4, gy:gy + h, gx:gx + w]
        u = cu[oy // 2:oy // 2 + h // 2, ox // 2:ox // 2 + w // 2].copy()
        v = cv[oy // 2:oy // 2 + h // 2, ox // 2:ox // 2 + w // 2].copy()
        for d in discs:
            d["pos"] += d["vel"]
            for k in range(2):
                if not 0.1 < d["pos"][k] < 0.9:
                    d["vel"][k] *= -1
            r = d["r"]
            cy, cx = int(d["pos"][0] * (h - 2 * r)) & ~1, int(d["pos"][1] * (w - 2 * r)) & ~1
            y[cy:cy + 2 * r, cx:cx + 2 * r][d["mask"]] = d["tex"][d["mask"]]
            m2 = d["mask"][::2, ::2]
            u[cy // 2:cy // 2 + r, cx // 2:cx // 2 + r][m2] = d["u"]
            v[cy // 2:cy // 2 + r, cx // 2:cx // 2 + r][m2] = d["v"]
        planes = [np.clip(p, 16, 235).astype(np.uint8) for p in (y, u, v)]
        yield np.concatenate([planes[0].ravel(), planes[1].ravel(), planes[2].ravel()]).reshape(h * 3 // 2, w)


def write_clip(path: Path, seed: int, seconds: float, w: int, h: int, fps: int = 30) -> None:
    import av

    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(fps), options={"crf": "23", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i, yuv in enumerate(_frames(seed, int(round(seconds * fps)), w, h)):
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.rename(path)


def make_folder(root: Path, clips: int, seconds: float, height: int, fps: int = 30) -> Path:
    """`root/videos-{clips}x{seconds}s-{height}p/clip_XX.mp4` (16:9, even sizes). Clip i is always the same video
    (seed 1000 + i): it is made once in `root/clips-{seconds}s-{height}p/` and linked into every folder."""
    h = height - height % 2
    w = int(round(h * 16 / 9 / 2)) * 2
    pool = root / f"clips-{seconds:g}s-{h}p"
    d = root / f"videos-{clips}x{seconds:g}s-{h}p"
    pool.mkdir(parents=True, exist_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        src, dst = pool / f"clip_{i:02d}.mp4", d / f"clip_{i:02d}.mp4"
        if not src.exists():
            write_clip(src, 1000 + i, seconds, w, h, fps)
        if not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
    return d


def make_models(root: Path, arch: str, frames: int, size: int) -> tuple[Path, Path]:
    """A random-init `transformers` VJEPA2Model of `arch` (saved with save_pretrained) and our file converted from
    it; cached under `root/model-{arch}-{frames}x{size}`."""
    from vjepa_cli.config.model import ModelConfig

    d = root / f"model-{arch}-{frames}x{size}"
    hf_dir, ours = d / "hf", d / "ours.safetensors"
    if ours.exists():
        return hf_dir, ours
    from folder_sides import import_torchvision

    import_torchvision()  # before transformers (see there)
    import transformers

    from vjepa_cli.models.load import run_convert

    dim, depth, heads, mlp = ModelConfig(arch=arch, img_size=size, num_frames=frames).resolved_sizes()
    cfg = transformers.VJEPA2Config(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
                                    mlp_ratio=mlp, crop_size=size, frames_per_clip=frames, pred_num_hidden_layers=1,
                                    attn_implementation="sdpa")
    torch.manual_seed(0)  # transformers initialises from the global RNG (benchmark only)
    model = transformers.VJEPA2Model(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move LayerNorm weights/biases off 1/0 so a wrong conversion would show
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    model.save_pretrained(hf_dir)
    run_convert(hf_dir, ours, img_size=size, num_frames=frames, overwrite=True)
    (d / "info.json").write_text(json.dumps({"arch": arch, "dim": dim, "depth": depth, "heads": heads}))
    return hf_dir, ours
