"""V-JEPA features for the world model: collect -> `vjepa pretrain` on the episodes' videos -> `encoder.path`
-> `wm train`, and a released (official-layout) checkpoint as `encoder.path`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_wm_cli import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _sets(items):
    return [x for s in items for x in ("--set", s)]


def test_collect_pretrain_train_chain(tmp_path, run_cli):
    eps, pre, run = tmp_path / "eps", tmp_path / "pre", tmp_path / "wm"
    r = run_cli("wm", "collect", "--env", "reach2d", "--episodes", "4", "--steps", "9", "--size", "32", "-o", eps)
    assert r.code == 0, r
    rows = (eps / "videos.csv").read_text().splitlines()
    assert rows[0] == "path,label,num_frames,fps,width,height" and rows[1].startswith("ep_00000/frames.mp4,,10,")
    r = run_cli("pretrain", "wm/pretrain-episodes", *_sets([
        f"data.datasets=[{eps / 'videos.csv'}]", "steps=2", "batch_size=2", "optim.warmup_steps=1",
        "model.img_size=32", "data.crop_size=32", "model.embed_dim=32", "model.num_heads=2", "model.depth=1",
        "model.pred_embed_dim=16", "model.pred_depth=1", "model.pred_num_heads=2", "checkpoint_every=2"]),
        "-o", pre, "--json")
    assert r.code == 0, r
    model = json.loads(r.out.splitlines()[-1])["model"]
    tiny = [s for s in TINY if not s.startswith(("data.env", "data.num_episodes", "data.steps", "encoder.model"))]
    r = run_cli("wm", "train", "wm/reach2d", *_sets([*tiny, f"data.episodes={eps}", f"encoder.path={model}"]),
                "-o", run, "--json")
    assert r.code == 0, r
    from vjepa_cli.models.world_model import load_world_model

    wm = load_world_model(run / "wm.safetensors")
    assert wm.meta["encoder_source"]["kind"] == "file" and wm.meta["encoder_source"]["path"].endswith("model.safetensors")
    assert wm.encoder.config.embed_dim == 32  # the pretrained encoder, not the recipe's random one


def test_released_checkpoint_as_encoder_path(tmp_path):
    """An official-layout V-JEPA checkpoint (what `vjepa convert` reads) is the frozen encoder, unconverted."""
    from tests.test_convert import CFG, _official, _perturbed
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.models import build_encoder, build_predictor
    from vjepa_cli.models.frozen import encode_frames
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    g = torch.Generator().manual_seed(0)
    enc, tgt, pred = (_perturbed(m, i) for i, m in enumerate(
        (build_encoder(CFG, g), build_encoder(CFG, g), build_predictor(CFG, g)), 1))
    ckpt = tmp_path / "released.pth.tar"
    torch.save(_official(enc, tgt, pred), ckpt)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    res = run_wm_train(load_recipe(WMConfig, recipe, [*TINY, f"encoder.path={ckpt}"]), tmp_path / "run")
    wm = load_world_model(res.model_path)
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    mine = wm.encode(frames)  # (2, N, D): the target encoder, as V-JEPA evaluates
    from vjepa_cli.models.frozen import FrozenEncoder

    ref = encode_frames(FrozenEncoder(tgt.eval(), CFG, {}), frames)
    assert mine.shape == (2, 9, 192) and torch.allclose(mine, ref, atol=1e-5)  # vit_tiny: 3 x 3 tokens, width 192
