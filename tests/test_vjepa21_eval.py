"""V-JEPA 2.1 models under the evaluation commands: multi-level probes, `predict` / `surprise` with 1- and 4-level
predictors (and what their predictions are compared with), `viz` per level, and a 2.1 encoder in a world model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _eval_helpers import save_tiny_model, tiny_config, write_index_video
from _probe_helpers import TINY_SETS, colour_manifests

import vjepa_cli
from vjepa_cli.config.extract import SurpriseConfig, WindowConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.tensors import load_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

V21 = dict(depth=4, pos_embed="rope", rope_interleaved=True, rope_interp_grid=16, image_embed=True,
           modality_embed=True, levels=(0, 1, 2, 3), pred_context_head=True, pred_num_mask_tokens=8)
D = 48


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("v21eval")
    cfgs = {"G": tiny_config(**V21, pred_levels=4), "B": tiny_config(**V21, pred_levels=1, pred_out_dim=40),
            "two": tiny_config(**{**V21, "levels": (1, 3)}), "v2": tiny_config(pos_embed="rope")}
    out = {k: save_tiny_model(d / f"{k}.safetensors", c, seed=i) for i, (k, c) in enumerate(cfgs.items())}
    out["video"] = write_index_video(d / "v.mp4", 30)
    out["dir"] = d
    return out


# ---------------------------------------------------------------- probes
def test_probe_features_levels_equal_the_level_blocks_read_through_their_norms(models):
    """`probe.levels` reads the hierarchical output; `probe.layers` naming the same blocks (the official
    multilevel `out_layers`) gives the same features, each block through its own level norm."""
    from vjepa_cli.eval.probe.features import encode_clips

    enc = vjepa_cli.load_model(models["two"]).encoder  # levels after blocks 1 and 3 (0-based)
    clips = torch.randint(0, 256, (2, 1, 1, 3, 4, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    dev = torch.device("cpu")
    both = encode_clips(enc, clips, (), dev, levels=(0, 1))
    assert both.shape == (2, 1, 8, 2 * D)
    assert torch.allclose(both, encode_clips(enc, clips, (2, 4), dev), atol=1e-6)  # 1-based blocks 2 and 4
    assert torch.allclose(encode_clips(enc, clips, (), dev, levels=(1,)), encode_clips(enc, clips, (), dev), atol=1e-6)
    with pytest.raises(VjepaError, match="block 3 is not a level"):
        encode_clips(enc, clips, (3,), dev)


@pytest.mark.parametrize("extra", [[], ["probe.levels=all"], ["probe.levels=[0,3]"]])
def test_probe_runs_on_a_21_model(models, extra, tmp_path):
    from vjepa_cli.config.probe import load_probe_config
    from vjepa_cli.eval.probe.run import run_probe

    train, val = colour_manifests(tmp_path, n_train=6, n_val=4)
    cfg = load_probe_config("manifest", None, [*TINY_SETS, "optim.epochs=2", *extra])
    res = run_probe(cfg, model=models["G"], train=train, val=val, cache_dir=tmp_path / "cache")
    assert res.num_val == 4 and 0.0 <= res.best["val_top1"] <= 1.0 and np.isfinite(res.best["train_top1"])


def test_probe_levels_option_and_its_errors(models, tmp_path, run_cli):
    from vjepa_cli.config.probe import ProbeHeadConfig

    with pytest.raises(ValueError, match="not both"):
        ProbeHeadConfig(layers=(1,), levels=(0,))
    train, val = colour_manifests(tmp_path, n_train=4, n_val=2)
    sets = [a for s in [*TINY_SETS, "optim.epochs=1"] for a in ("--set", s)]
    base = ["probe", "--task", "manifest", "--train", train, "--val", val, "-o", tmp_path / "out", *sets]
    r = run_cli(*base, "--model", models["v2"], "--levels", "all")
    assert r.code == 1 and "no hierarchical levels" in r.err and not (tmp_path / "out").exists()
    r = run_cli(*base, "--model", models["G"], "--levels", "5")
    assert r.code == 1 and "level 5 is out of range" in r.err
    r = run_cli(*base, "--model", models["G"], "--levels", "0,3", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["num_val"] == 2


# ---------------------------------------------------------------- predict / surprise
def _cfg(**kw):
    return SurpriseConfig(window=WindowConfig(frames=8, frame_step=2, stride=2), context_frames=(2, 4), **kw)


def _clips(video):
    from vjepa_cli.data.transforms import normalize_clips
    from vjepa_cli.infer.inputs import VideoJob
    from vjepa_cli.infer.windows import WindowDecoded, video_events

    evs = video_events(VideoJob(0, video, video), WindowConfig(frames=8, frame_step=2, stride=2), 32, tail=False)
    wins = [ev.window.frames[0] for ev in evs if isinstance(ev, WindowDecoded)]
    return normalize_clips(torch.from_numpy(np.stack(wins)), channels_last=True)  # (W, 3, 8, 32, 32)


@pytest.mark.parametrize("kind,target", [("G", "levels"), ("B", "context-head"), ("v2", "last")])
def test_predict_compares_like_with_like(models, kind, target, tmp_path):
    from vjepa_cli.infer.predict import run_predict

    out = tmp_path / "p.safetensors"
    res = run_predict(models["video"], out, _cfg(), model_path=models[kind])
    t, meta = load_tensors(out)
    assert meta["target"] == target and np.isfinite(res["mean_error"]) and res["mean_error"] > 0
    m = vjepa_cli.load_model(models[kind])
    x = _clips(models["video"])
    kc = 1 * 2 * 2  # 2 context frames = 1 tubelet of a 2x2 grid
    ids = torch.arange(16).expand(len(x), -1)
    with torch.no_grad():
        if target == "levels":  # the hierarchical output, each level layer-normed on its own (the 2.1 targets)
            h = m.encoder(x, hierarchical=True).unflatten(-1, (4, D))
            want = F.layer_norm(h, (D,)).flatten(-2)[:, kc:]
            ctx = m.encoder(x, masks=[ids[:, :kc]], hierarchical=True)
        elif target == "context-head":  # teacher width: the context head's reading of the whole window
            _, full = m.predictor(m.encoder(x), ids, ids[:, :0], return_context=True, grid=(4, 2, 2))
            want, ctx = full[:, kc:], m.encoder(x, masks=[ids[:, :kc]])
        else:
            want = F.layer_norm(m.encoder(x), (D,))[:, kc:]
            ctx = m.encoder(x, masks=[ids[:, :kc]])
        pred = m.predictor(ctx, ids[:, :kc], ids[:, kc:], grid=(4, 2, 2))
    width = {"levels": 4 * D, "context-head": 40, "last": D}[target]
    assert t["target"].shape == t["predicted"].shape == (len(x), 12, width)
    assert torch.allclose(t["target"], want, atol=1e-5) and torch.allclose(t["predicted"], pred, atol=1e-5)
    l1 = (pred - want).abs().mean(dim=(1, 2))
    assert torch.allclose(t["surprise"], l1, atol=1e-5)


def test_surprise_on_21_models_gives_finite_curves(models, tmp_path):
    from vjepa_cli.infer.surprise import run_surprise

    for kind in ("G", "B"):
        res = run_surprise([models["video"]], tmp_path / kind, _cfg(), model_path=models[kind], plot=False)
        (row,) = res.rows
        assert "error" not in row and np.isfinite(row["max"]) and row["mean"] > 0 and row["windows"] == 4


def test_a_predictor_whose_output_cannot_be_compared_is_refused():
    from vjepa_cli.infer.predict import readout
    from vjepa_cli.models import build_encoder, build_predictor

    cfg = tiny_config(**{**V21, "pred_context_head": False}, pred_out_dim=40)
    with pytest.raises(VjepaError, match="predicts 40-wide features"):
        readout(build_encoder(cfg), build_predictor(cfg))


# ---------------------------------------------------------------- viz
def test_viz_draws_one_row_per_level(models, tmp_path):
    from vjepa_cli.data.media import read_image
    from vjepa_cli.infer.viz import level_colors, pca_rgb, run_viz

    w = WindowConfig(frames=4, frame_step=2)
    heights = {}
    for kind, levels in (("G", None), ("G", (0, 3)), ("v2", None)):
        out = tmp_path / f"{kind}{levels}.png"
        res = run_viz(models["video"], out, w, model_path=models[kind], max_windows=1, levels=levels)
        heights[(kind, levels)] = read_image(out).shape[0]
        assert res.get("levels") == {("G", None): [0, 1, 2, 3], ("G", (0, 3)): [0, 3]}.get((kind, levels))
    row = heights[("G", None)] - heights[("G", (0, 3))]  # two rows fewer
    assert heights[("G", None)] - heights[("v2", None)] == 3 * row // 2  # 5 rows against 2
    mp4 = run_viz(models["video"], tmp_path / "g.mp4", w, model_path=models["G"], max_windows=1)
    assert mp4["levels"] == [0, 1, 2, 3]
    with pytest.raises(VjepaError, match="no hierarchical levels"):
        run_viz(models["video"], tmp_path / "x.png", w, model_path=models["v2"], levels="all")
    z = torch.randn(2, 8, 3 * D, generator=torch.Generator().manual_seed(0))  # each level gets its own PCA
    cols = level_colors(z, (2, 2, 2), 3)
    assert len(cols) == 3 and np.allclose(cols[1].reshape(-1, 3), pca_rgb(z[..., D:2 * D]))


# ---------------------------------------------------------------- world model
def test_world_model_on_a_21_encoder(models, tmp_path, run_cli):
    from test_wm_cli import TINY

    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.media import write_png
    from vjepa_cli.envs.reach2d import Reach2D
    from vjepa_cli.models.frozen import encode_frames
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    (tmp_path / "r.yaml").write_text("seed: 0\n")
    sets = [s for s in TINY if not s.startswith("encoder.model")] + [f"encoder.path={models['G']}"]
    res = run_wm_train(load_recipe(WMConfig, tmp_path / "r.yaml", sets), tmp_path / "run")
    assert np.isfinite(res.final_loss)
    wm = load_world_model(res.model_path)
    assert wm.encoder.config.generation == "2.1" and wm.encoder.grid == (2, 2)
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(0))
    frame = env.render()
    z = encode_frames(wm.encoder, frame[None])  # a frame is an image: the 2.1 image embedder reads it
    with torch.no_grad():
        from vjepa_cli.models.frozen import preprocess

        ref = F.layer_norm(wm.encoder.module(preprocess(frame[None], 32, "cpu")), (D,))
    assert torch.allclose(z, ref, atol=1e-6) and z.shape == (1, 4, D)
    write_png(tmp_path / "s.png", frame)
    write_png(tmp_path / "g.png", env.goal_image())
    r = run_cli("wm", "plan", "--model", res.model_path, "--start", tmp_path / "s.png", "--goal", tmp_path / "g.png",
                "--json", "--set", "plan.horizon=2")
    assert r.code == 0, r
    assert len(json.loads(r.out)["actions"]) == 2


def test_token_grid_of_an_image_is_one_step():
    from vjepa_cli.models import build_encoder

    for cfg in (tiny_config(**V21), tiny_config()):
        enc = build_encoder(cfg)
        assert enc.token_grid(torch.zeros(1, 3, 32, 48)) == (1, 2, 3)
        assert enc.token_grid(torch.zeros(1, 3, 1, 32, 48)) == (1, 2, 3)
        assert enc.token_grid(torch.zeros(1, 3, 4, 32, 48)) == (2, 2, 3)
        assert enc(torch.zeros(1, 3, 1, 32, 48)).shape[1] == 6


def test_surprise_reports_a_still_image_and_scores_the_videos(models, tmp_path):
    from vjepa_cli.data.media import write_png
    from vjepa_cli.infer.surprise import run_surprise

    write_png(tmp_path / "still.png", np.zeros((32, 32, 3), np.uint8))
    res = run_surprise([tmp_path / "still.png", models["video"]], tmp_path / "o", _cfg(), model_path=models["G"],
                       plot=False)
    img, vid = res.rows
    assert "still image" in img["error"] and "error" not in vid and np.isfinite(vid["max"])


def test_probe_features_follow_the_head_config(models):
    from vjepa_cli.config.probe import ProbeHeadConfig
    from vjepa_cli.eval.probe.features import encode_clips, probe_features, readout_width

    enc = vjepa_cli.load_model(models["G"]).encoder
    clips = torch.randint(0, 256, (1, 1, 1, 3, 4, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    dev = torch.device("cpu")
    for head, want in ((ProbeHeadConfig(), encode_clips(enc, clips, (), dev)),
                       (ProbeHeadConfig(levels="all"), encode_clips(enc, clips, (), dev, levels=(0, 1, 2, 3))),
                       (ProbeHeadConfig(layers=(1, 4)), encode_clips(enc, clips, (1, 4), dev))):
        got = probe_features(enc, clips, head, dev)
        assert torch.equal(got, want) and got.shape[-1] == readout_width(enc, head)


def test_viz_cli_levels(models, tmp_path, run_cli):
    from vjepa_cli.data.media import read_image

    out = tmp_path / "l.png"
    r = run_cli("viz", models["video"], "-o", out, "--model", models["G"], "--frames", "4", "--max-windows", "1",
                "--levels", "0,3", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["levels"] == [0, 3] and read_image(out).ndim == 3
    r = run_cli("viz", models["video"], "-o", tmp_path / "x.png", "--model", models["G"], "--levels", "4")
    assert r.code == 1 and "out of range" in r.err and not (tmp_path / "x.png").exists()
