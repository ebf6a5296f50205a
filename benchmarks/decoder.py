"""What the feature decoder shows, and what it costs: held-out synthetic physics videos, decoded from the
*actual* target features and from the *predicted* ones, against two baselines, for a pretrained encoder and its
random initialisation; the generative kind's sample diversity and sharpness against the regression kind at the
same training budget; training time and decode speed on this machine.

    vjepa pretrain tiny-physics -o runs/tiny-physics
    vjepa export runs/tiny-physics -o physics-model.safetensors --with-predictor
    python benchmarks/decoder.py --model physics-model.safetensors --steps 300 --json decoder.json

Windows: 8 frames every 4 of 16-frame held-out videos (`vjepa synth --task physics`, seed 999, never trained
on); the context is the first 4 frames (2 tubelets), the future the last 4. Scores are over the 4 future frames:
PSNR (dB) and SSIM (Wang et al. 2004; `vjepa_cli.infer.image_metrics`), sharpness = mean |image gradient| as a
share of the real frames', diversity = per-pixel standard deviation across 4 samples (generative only).
Baselines: the last context frame repeated, and the mean frame of the decoder's training clips.
The random init is the model `vjepa pretrain` starts from with `--seed` (encoder and predictor).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config._load import load_recipe
from vjepa_cli.config.decoder import DecoderTrainConfig
from vjepa_cli.data.transforms import normalize_clips
from vjepa_cli.infer.image_metrics import psnr, sharpness, ssim
from vjepa_cli.infer.predict import predict_future
from vjepa_cli.models.decoder import load_decoder
from vjepa_cli.models.load import load_model
from vjepa_cli.train.decoder import run_decoder_train

CONTEXT = 4  # frames


def heldout_windows(n_videos: int, size: int, work: Path) -> np.ndarray:
    """uint8 (M, 8, S, S, 3): 8-frame windows every 4 frames of held-out physics videos."""
    from vjepa_cli.data.media import read_video
    from vjepa_cli.data.synth import generate_synth

    res = generate_synth("physics", work / "heldout", n=n_videos, frames=16, size=size, seed=999, val_fraction=0.0)
    from vjepa_cli.data.manifest import read_manifest

    clips = []
    for row in read_manifest(res.train_manifest):
        v = read_video(row.path)
        clips += [v[s:s + 8] for s in range(0, len(v) - 7, 4)]
    return np.stack(clips)


def random_init(model_path: Path, seed: int, out: Path) -> Path:
    from vjepa_cli.models import build_encoder, build_predictor
    from vjepa_cli.models.load import save_model_file

    cfg = load_model(model_path).config
    g = torch.Generator().manual_seed(seed)
    return save_model_file(out, build_encoder(cfg, generator=g), build_predictor(cfg, generator=g), cfg,
                           {"source": "random-init", "seed": seed})


@torch.no_grad()
def features(model_path: Path, clips: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, actual) future features (M, Kt, D) of the windows."""
    m = load_model(model_path)
    preds, tgts = [], []
    for i in range(0, len(clips), 16):
        x = normalize_clips(torch.from_numpy(clips[i:i + 16]), channels_last=True)
        (p, t), = predict_future(m.encoder, m.predictor, x, [CONTEXT])[0]
        preds.append(p.float())
        tgts.append(t.float())
    return torch.cat(preds), torch.cat(tgts)


def scores(decoded: torch.Tensor, truth: torch.Tensor) -> dict:
    """decoded, truth float (M, T, S, S, 3) in [0, 1] -> mean PSNR, SSIM and sharpness ratio."""
    return {"psnr": round(float(psnr(decoded, truth).mean()), 2), "ssim": round(float(ssim(decoded, truth).mean()), 3),
            "sharpness": round(float(sharpness(decoded).mean() / sharpness(truth).mean()), 3)}


def train(model_path: Path, kind: str, args, out: Path) -> tuple[Path, float]:
    sets = [f"model={model_path}", f"decoder.kind={kind}", f"optim.steps={args.steps}", "device=cpu",
            f"data.clips={args.clips}", f"optim.batch_size={args.batch}", f"checkpoint_every={args.steps}",
            *args.set]
    t0 = time.perf_counter()
    res = run_decoder_train(load_recipe(DecoderTrainConfig, None, sets), out)
    return res.output, time.perf_counter() - t0


@torch.no_grad()
def decode_all(dec, feats: torch.Tensor, samples: int) -> torch.Tensor:
    """(S, M, T, H, W, 3) float in [0, 1], 16 windows at a time (noise seeded per chunk)."""
    outs = [dec.sample(feats[i:i + 16], samples, torch.Generator().manual_seed(i)) for i in range(0, len(feats), 16)]
    return torch.cat(outs, dim=1)


def measure(name: str, model_path: Path, clips: np.ndarray, mean_frame: torch.Tensor, args, work: Path) -> list[dict]:
    truth = torch.from_numpy(clips[:, CONTEXT:]).float() / 255  # (M, 4, S, S, 3)
    pred, tgt = features(model_path, clips)
    rows = []
    for kind in args.kinds:
        path, seconds = train(model_path, kind, args, work / f"{name.replace(' ', '-')}-{kind}.safetensors")
        dec = load_decoder(path)
        n = args.samples if kind == "generative" else 1
        t0 = time.perf_counter()
        from_tgt = decode_all(dec, tgt, n)
        fps = n * truth.shape[0] * truth.shape[1] / (time.perf_counter() - t0)
        from_pred = decode_all(dec, pred, n)
        for src, dec_frames in (("actual features", from_tgt), ("predicted features", from_pred)):
            row = {"encoder": name, "kind": kind, "decoded from": src, **scores(dec_frames[0], truth),
                   "train_s": round(seconds, 1), "decode_fps": round(fps, 1)}
            if n > 1:
                row["diversity"] = round(float(dec_frames.std(0).mean()), 4)
                row["psnr_sample_mean"] = round(float(psnr(dec_frames.mean(0), truth).mean()), 2)
            rows.append(row)
    return rows


def baselines(clips: np.ndarray, mean_frame: torch.Tensor) -> list[dict]:
    truth = torch.from_numpy(clips[:, CONTEXT:]).float() / 255
    last = torch.from_numpy(clips[:, CONTEXT - 1:CONTEXT]).float().div(255).expand_as(truth)
    return [{"encoder": "-", "kind": "baseline", "decoded from": "last context frame repeated", **scores(last, truth)},
            {"encoder": "-", "kind": "baseline", "decoded from": "mean training frame",
             **scores(mean_frame.expand_as(truth), truth)}]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="pretrained model file with its predictor")
    p.add_argument("--seed", type=int, default=0, help="seed of the random init compared against")
    p.add_argument("--steps", type=int, default=300, help="decoder training steps (the same for every kind)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--clips", type=int, default=512)
    p.add_argument("--videos", type=int, default=24, help="held-out videos")
    p.add_argument("--samples", type=int, default=4, help="generative samples per prediction")
    p.add_argument("--kinds", nargs="+", default=["regression", "generative"])
    p.add_argument("--set", action="append", default=[], help="decoder recipe override, e.g. decoder.grad_weight=0.5")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--skip-random", action="store_true", help="only the pretrained encoder")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vjepa-decoder-bench-"))
    size = int(load_model(args.model).config.img_size)
    clips = heldout_windows(args.videos, size, work)
    from vjepa_cli.train.decoder_data import cut_clips, video_paths

    cfg = load_recipe(DecoderTrainConfig, None, args.set)
    train_clips = cut_clips(video_paths(cfg.data.source, cfg.data, size), 256, 8, size, cfg.seed)
    mean_frame = torch.from_numpy(train_clips).float().div(255).mean((0, 1))  # (S, S, 3)
    rows = baselines(clips, mean_frame)
    models = [("pretrained", args.model)]
    if not args.skip_random:
        models.append(("random init", random_init(args.model, args.seed, work / "random.safetensors")))
    for name, path in models:
        rows += measure(name, path, clips, mean_frame, args, work)
    out = {"windows": int(len(clips)), "steps": args.steps, "batch": args.batch, "threads": torch.get_num_threads(),
           "sets": args.set, "rows": rows, "work_dir": str(work)}
    cols = ["encoder", "kind", "decoded from", "psnr", "ssim", "sharpness", "diversity", "psnr_sample_mean",
            "train_s", "decode_fps"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "-")) for c in cols))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
