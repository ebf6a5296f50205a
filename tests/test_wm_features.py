"""Frozen-encoder features: one frame at a time (repeated to the tubelet), layer-normed, cached, from a file."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.config.wm import WMEncoderConfig
from vjepa_cli.models.frozen import IMAGENET_MEAN, IMAGENET_STD, encode_frames, load_frozen_encoder

TINY = ModelConfig(arch="vit_tiny", embed_dim=32, depth=1, num_heads=2, patch_size=16, tubelet_size=2,
                   num_frames=2, img_size=32)


def test_encode_frames_matches_manual_two_frame_clip():
    enc = load_frozen_encoder(WMEncoderConfig(model=TINY, seed=3), "cpu")
    assert enc.source == {"kind": "random", "seed": 3} and enc.grid == (2, 2)
    assert not any(p.requires_grad for p in enc.module.parameters()) and not enc.module.training
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    z = encode_frames(enc, frames, batch_size=2)  # (T, N, D)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # manual reference
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    clip = x.unsqueeze(2).repeat(1, 1, 2, 1, 1)  # each frame repeated to the tubelet: (T, 3, 2, H, W)
    with torch.no_grad():
        ref = F.layer_norm(enc.module(clip), (32,))
    assert z.shape == (3, 4, 32) and torch.allclose(z, ref, atol=1e-5)
    assert torch.allclose(z.mean(-1), torch.zeros(3, 4), atol=1e-5)
    # same seed -> same encoder (recorded in metadata), other seed -> other features
    same = encode_frames(load_frozen_encoder(WMEncoderConfig(model=TINY, seed=3), "cpu"), frames, batch_size=2)
    other = encode_frames(load_frozen_encoder(WMEncoderConfig(model=TINY, seed=4), "cpu"), frames)
    assert torch.equal(z, same) and not torch.allclose(z, other)


def test_encoder_from_model_file(tmp_path):
    from vjepa_cli.models import build_encoder
    from vjepa_cli.models.load import save_model_file

    src = build_encoder(TINY, generator=torch.Generator().manual_seed(7))
    path = save_model_file(tmp_path / "enc.safetensors", src, None, TINY, {"test": True})
    enc = load_frozen_encoder(WMEncoderConfig(path=str(path)), "cpu")
    assert enc.source["kind"] == "file" and enc.config.embed_dim == 32
    for (k, a), (k2, b) in zip(src.state_dict().items(), enc.module.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
