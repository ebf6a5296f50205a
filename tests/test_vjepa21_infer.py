"""V-JEPA 2.1 at inference: `extract` on images and with `--levels` / `--pool none`, `viz` per level, multi-level
probes, `predict` / `surprise` on 1- and 4-level predictors, and a 2.1 encoder under a world model.

The models are tiny random 2.1 models (4 blocks, every block a level unless said otherwise); each test compares
the command's output with a direct call of the encoder or predictor on the same pixels.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _eval_helpers import save_tiny_model, tiny_config, write_index_video

import vjepa_cli
from vjepa_cli.config.extract import ExtractConfig, WindowConfig, parse_levels
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.extract import run_extract
from vjepa_cli.io.tensors import load_tensors, meta_json
from vjepa_cli.models.frozen import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.usefixtures("one_thread")

V21 = dict(depth=4, pos_embed="rope", rope_interleaved=True, rope_interp_grid=16, image_embed=True,
           modality_embed=True, levels=(0, 1, 2, 3), pred_context_head=True, pred_num_mask_tokens=8)
KINDS = {
    "G": dict(pred_levels=4),  # g/G-like: 4 levels in, 4 levels out
    "B": dict(pred_levels=1, pred_out_dim=40),  # B/L-like: 1 level in, a (teacher) width other than D out
    "v2": dict(pos_embed="rope"),  # a V-JEPA 2 model: no levels, no image embedder
}
D = 48  # tiny_config's width


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from vjepa_cli.data.media import write_png

    d = tmp_path_factory.mktemp("v21infer")
    models = {k: save_tiny_model(d / f"{k}.safetensors", tiny_config(**({} if k == "v2" else V21), **kw), seed=i)
              for i, (k, kw) in enumerate(KINDS.items())}
    rng = np.random.default_rng(0)
    imgs = d / "imgs"
    (imgs / "sub").mkdir(parents=True)
    pics = {"a": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "sub/b": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    for name, img in pics.items():
        write_png(imgs / f"{name}.png", img)
    video = write_index_video(d / "v.mp4", 24)
    return dict(dir=d, models=models, imgs=imgs, pics=pics, video=video)


def _load(path):
    return vjepa_cli.load_model(path)


def _normalise(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, 1, H, W), ImageNet-normalised by hand."""
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return x[None, :, None]


def _window_clips(video, frames=4, step=2) -> torch.Tensor:
    """The normalised windows `extract` sees (back-to-back, tail included) of `video`: (W, 3, T, 32, 32)."""
    from vjepa_cli.data.transforms import normalize_clips
    from vjepa_cli.infer.inputs import VideoJob
    from vjepa_cli.infer.windows import WindowDecoded, video_events

    cfg = WindowConfig(frames=frames, frame_step=step)
    wins = [ev.window.frames[0] for ev in video_events(VideoJob(0, video, video), cfg, 32) if isinstance(ev, WindowDecoded)]
    return normalize_clips(torch.from_numpy(np.stack(wins)), channels_last=True)


def _extract(media, inputs, out, kind="G", **kw):
    cfg = ExtractConfig(window=WindowConfig(frames=4, frame_step=2, **kw.pop("window", {})), overwrite=True, **kw)
    res = run_extract(inputs, out, cfg, model_path=media["models"][kind])
    assert res.count("ok") == len(res.videos), [r.error for r in res.videos]
    return res


# ---------------------------------------------------------------- extract
def test_pool_none_reshapes_to_the_recorded_grid_and_matches_the_encoder(media, tmp_path):
    _extract(media, [media["video"]], tmp_path / "f.safetensors", pool="none")
    t, meta = load_tensors(tmp_path / "f.safetensors")
    grid = meta_json(meta, "grid")
    feats = t["features"]  # (W, N, D)
    assert grid == [2, 2, 2] and int(meta["tokens"]) == feats.shape[1] == math.prod(grid)
    enc = _load(media["models"]["G"]).encoder
    with torch.no_grad():
        ref = enc(_window_clips(media["video"]))  # (W, N, D)
    assert feats.shape == ref.shape and torch.allclose(feats, ref, atol=1e-5)
    # the documented reshape: token (t, h, w) of the grid is id t*H'*W' + h*W' + w
    cube = feats.view(len(feats), *grid, -1)
    assert torch.equal(cube[1, 1, 0, 1], feats[1, 1 * 4 + 0 * 2 + 1])
    assert meta["source_kind"] == "video" and t["timestamps"].shape == (len(feats), 2)


def test_levels_are_slices_of_the_hierarchical_output(media, tmp_path):
    enc = _load(media["models"]["G"]).encoder
    with torch.no_grad():
        hier = enc(_window_clips(media["video"]), hierarchical=True)  # (W, N, 4D)
    _extract(media, [media["video"]], tmp_path / "all.safetensors", pool="none", levels="all")
    _extract(media, [media["video"]], tmp_path / "03.safetensors", pool="none", levels=(3, 0))
    _extract(media, [media["video"]], tmp_path / "mean3.safetensors", levels=(3,))
    _extract(media, [media["video"]], tmp_path / "mean.safetensors")
    every, meta = load_tensors(tmp_path / "all.safetensors")
    assert torch.allclose(every["features"], hier, atol=1e-5)
    assert (meta_json(meta, "levels"), meta_json(meta, "level_blocks"), int(meta["level_dim"])) == ([0, 1, 2, 3], [0, 1, 2, 3], D)
    two, meta = load_tensors(tmp_path / "03.safetensors")
    want = torch.cat([hier[..., 3 * D:], hier[..., :D]], dim=-1)  # in the order asked
    assert torch.allclose(two["features"], want, atol=1e-5) and meta_json(meta, "levels") == [3, 0]
    # the deepest level is the default output
    last, default = load_tensors(tmp_path / "mean3.safetensors")[0], load_tensors(tmp_path / "mean.safetensors")[0]
    assert torch.allclose(last["features"], default["features"], atol=1e-6)
    assert not torch.allclose(hier[..., :D], hier[..., 3 * D:], atol=1e-3)  # levels do differ


def test_image_input_is_the_encoder_on_the_normalised_image(media, tmp_path):
    # 32x32 images with --size 32 --resize 32: no resampling, so the reference is the raw normalised image
    _extract(media, [media["imgs"]], tmp_path / "o", pool="none", window={"size": 32, "resize": 32})
    for kind in ("G", "v2"):
        _extract(media, [media["imgs"] / "a.png"], tmp_path / f"{kind}.safetensors", kind=kind, pool="none",
                 window={"size": 32, "resize": 32})
        t, meta = load_tensors(tmp_path / f"{kind}.safetensors")
        x = _normalise(media["pics"]["a"])  # (1, 3, 1, 32, 32)
        enc = _load(media["models"][kind]).encoder
        with torch.no_grad():
            ref = enc(x)
            video_path = enc(x.expand(-1, -1, 2, -1, -1))  # the frame repeated to one tubelet
        assert torch.allclose(t["features"], ref, atol=1e-5)
        assert meta_json(meta, "grid") == [1, 2, 2] and meta["source_kind"] == "image" and int(meta["frames"]) == 1
        assert t["timestamps"].tolist() == [[0.0, 0.0]]
        # 2.1 reads images through its image embedder; V-JEPA 2 repeats the frame
        assert torch.allclose(ref, video_path, atol=1e-5) == (kind == "v2")
    outs = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.safetensors"))
    assert outs == ["a.safetensors", "sub/b.safetensors"]
    folder = load_tensors(tmp_path / "o" / "a.safetensors")[0]["features"]
    assert torch.allclose(folder, load_tensors(tmp_path / "G.safetensors")[0]["features"])


def test_images_and_videos_mix_in_one_run(media, tmp_path):
    """One batch never mixes one-frame images with video windows; each output equals its own run's."""
    _extract(media, [media["video"], media["imgs"] / "a.png"], tmp_path / "mix", batch_size=64, pool="none")
    _extract(media, [media["video"]], tmp_path / "v.safetensors", pool="none")
    _extract(media, [media["imgs"] / "a.png"], tmp_path / "a.safetensors", pool="none")
    for name in ("v", "a"):
        got = load_tensors(tmp_path / "mix" / f"{name}.safetensors")[0]["features"]
        assert torch.allclose(got, load_tensors(tmp_path / f"{name}.safetensors")[0]["features"], atol=1e-6)


def test_levels_errors_are_one_line(media, tmp_path, run_cli):
    with pytest.raises(VjepaError, match="no hierarchical levels"):
        _extract(media, [media["video"]], tmp_path / "x.safetensors", kind="v2", levels="all")
    with pytest.raises(VjepaError, match="level 4 is out of range: this model has 4 levels"):
        _extract(media, [media["video"]], tmp_path / "x.safetensors", levels=(0, 4))
    assert parse_levels("all") == "all" and parse_levels(" 0,3 ") == (0, 3) and parse_levels(None) == ()
    for bad in ("x", "1,1", "-1"):
        with pytest.raises(VjepaError, match="bad --levels"):
            parse_levels(bad)
    out = tmp_path / "cli.safetensors"
    r = run_cli("extract", media["video"], "-o", out, "--model", media["models"]["G"], "--levels", "9")
    assert r.code == 1 and "out of range" in r.err and len(r.err.strip().splitlines()) == 1 and not out.exists()
    r = run_cli("extract", media["video"], "-o", out, "--model", media["models"]["v2"], "--levels", "all")
    assert r.code == 1 and "no hierarchical levels" in r.err and not out.exists()


def test_extract_cli_images_levels_pool_none(media, tmp_path, run_cli):
    r = run_cli("extract", media["imgs"], "-o", tmp_path / "o", "--model", media["models"]["G"], "--pool", "none",
                "--levels", "0,3", "--json")
    assert r.code == 0, r
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert sorted(row["status"] for row in rows) == ["ok", "ok"]
    t, meta = load_tensors(tmp_path / "o" / "sub" / "b.safetensors")
    assert t["features"].shape == (1, 4, 2 * D) and meta_json(meta, "levels") == [0, 3]
    # same settings again: skipped; other levels: refused without --overwrite
    r = run_cli("extract", media["imgs"], "-o", tmp_path / "o", "--model", media["models"]["G"], "--pool", "none",
                "--levels", "0,3")
    assert r.code == 0 and "2 skipped" in r.err
    r = run_cli("extract", media["imgs"], "-o", tmp_path / "o", "--model", media["models"]["G"], "--pool", "none")
    assert r.code == 1 and "other settings" in r.err
