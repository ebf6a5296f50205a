"""`vjepa wm plan / eval --decoder`: a decoder trained on a world model's encoder (frames encoded one at a
time) draws the imagined rollout next to what happened; a decoder of another encoder is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_decoder import SMALL
from test_wm_cli import TINY

from vjepa_cli.data.media import read_image, write_png
from vjepa_cli.envs.reach2d import Reach2D

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wm_and_decoder(tmp_path_factory):
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.decoder import DecoderTrainConfig
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.train.decoder import run_decoder_train
    from vjepa_cli.train.wm import run_wm_train

    out = tmp_path_factory.mktemp("wm")
    wm = run_wm_train(load_recipe(WMConfig, None, TINY), out).model_path
    sets = [*SMALL, f"model={wm}", f"data.source={out / 'episodes'}", "optim.steps=3", "device=cpu"]
    dec = run_decoder_train(load_recipe(DecoderTrainConfig, None, sets), out / "dec.safetensors").output
    return out, wm, dec


def test_wm_decoder_reads_single_frames(wm_and_decoder):
    from vjepa_cli.models.decoder import load_decoder

    _, _, dec = wm_and_decoder
    d = load_decoder(dec)
    assert d.meta["single_frames"] is True and d.cfg.embed_dim == 32 and d.cfg.img_size == 32


def test_plan_and_eval_pictures(wm_and_decoder, tmp_path, run_cli):
    _, wm, dec = wm_and_decoder
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(0))
    write_png(tmp_path / "s.png", env.render())
    write_png(tmp_path / "g.png", env.goal_image())
    r = run_cli("wm", "plan", "--model", wm, "--start", tmp_path / "s.png", "--goal", tmp_path / "g.png",
                "--decoder", dec, "--json", "--set", "plan.horizon=3")
    assert r.code == 0, r
    res = json.loads(r.out)
    img = read_image(res["render"])
    assert res["render"] == str(tmp_path / "s.imagined.png") and img.shape[1] > 5 * 64  # start, 3 steps, goal
    r = run_cli("wm", "eval", "--model", wm, "--env", "reach2d", "--episodes", "1", "--no-baselines",
                "-o", tmp_path / "ev", "--decoder", dec, "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["imagined"] == str(tmp_path / "ev" / "imagined.png")
    assert read_image(tmp_path / "ev" / "imagined.png").ndim == 3


def test_a_decoder_of_another_encoder_is_refused(wm_and_decoder, tmp_path, run_cli):
    from vjepa_cli.config.decoder import DecoderArchConfig, FeatureDecoderConfig
    from vjepa_cli.models.decoder import FeatureDecoder, save_decoder

    _, wm, _ = wm_and_decoder
    other = FeatureDecoder(FeatureDecoderConfig.for_encoder(DecoderArchConfig(width=32, depth=1, num_heads=2),
                                                            embed_dim=48, patch_size=16, tubelet_size=2, img_size=32))
    save_decoder(tmp_path / "other.safetensors", other, {})
    r = run_cli("wm", "eval", "--model", wm, "--env", "reach2d", "--episodes", "1", "-o", tmp_path / "ev",
                "--decoder", tmp_path / "other.safetensors")
    assert r.code == 1 and "width 48" in r.err and "width 32" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "ev").exists()  # refused before any episode ran
