"""The public Python API: `extract_features` equals `vjepa extract`'s file; `embed_images` equals the encoder on
the hand-made crop; both take a loaded model or a path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vjepa_cli
from tests._probe_helpers import colour_video, tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("api") / "m.safetensors")


def test_extract_features_equals_the_command(model_path, tmp_path, run_cli):
    from vjepa_cli.io.tensors import load_tensors

    a, b = colour_video(tmp_path / "a.mp4", 0, 1, frames=16), colour_video(tmp_path / "b.mp4", 1, 2, frames=12)
    r = run_cli("extract", a, b, "-m", model_path, "-o", tmp_path / "out", "--frames", "4", "--size", "32")
    assert r.code == 0, r
    feats = vjepa_cli.extract_features(vjepa_cli.load_model(model_path), [a, b], frames=4, size=32)
    for f, name in zip(feats, ("a", "b"), strict=True):
        ref, _ = load_tensors(tmp_path / "out" / f"{name}.safetensors")
        assert torch.equal(f.features, ref["features"]) and torch.equal(f.timestamps, ref["timestamps"])
    one = vjepa_cli.extract_features(model_path, a, frames=4, size=32, pool="none")  # a path works too
    assert one.features.shape == (feats[0].features.shape[0], 8, 32) and one.grid == (2, 2, 2)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    with pytest.raises(vjepa_cli.errors.VjepaError, match="bad.mp4"):
        vjepa_cli.extract_features(model_path, bad, frames=4, size=32)


def test_embed_images_matches_the_encoder_on_the_same_crop(model_path, tmp_path):
    from vjepa_cli.data.media import crop_views, write_png
    from vjepa_cli.data.transforms import normalize_clips

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3)]
    m = vjepa_cli.load_model(model_path)
    emb = vjepa_cli.embed_images(m, imgs, batch_size=2)
    assert emb.shape == (3, 32)
    short, side = 36, 32  # size * 256 / 224 -> the short side, then the centre crop
    clip = torch.from_numpy(np.stack([crop_views(im[None], short, side, 1)[0] for im in imgs]))  # (3, 1, S, S, 3)
    with torch.no_grad():
        ref = m.encoder(normalize_clips(clip, channels_last=True)).mean(1)
    assert torch.allclose(emb, ref, atol=1e-5)
    write_png(tmp_path / "x.png", imgs[1])
    assert torch.allclose(vjepa_cli.embed_images(model_path, tmp_path / "x.png")[0], emb[1], atol=1e-5)
    with pytest.raises(vjepa_cli.errors.VjepaError, match="uint8"):
        vjepa_cli.embed_images(m, [np.zeros((8, 8, 3), np.float32)])


def test_extract_combined_file_loads_with_numpy_alone(model_path, tmp_path, run_cli):
    """`--combined`: every window of every video in one file, with labels from the manifest, read with
    safetensors.numpy (no vjepa), equal to the per-video files."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import load_file

    from tests._probe_helpers import colour_manifests
    from vjepa_cli.io.tensors import load_tensors

    train, _ = colour_manifests(tmp_path, n_train=3, n_val=1, classes=2)
    (tmp_path / "labels.json").write_text(json.dumps({"red": 0, "green": 1}))
    out = tmp_path / "all.safetensors"
    r = run_cli("extract", train, "-m", model_path, "-o", tmp_path / "feats", "--frames", "4", "--size", "32",
                "--combined", out)
    assert r.code == 0, r
    d = load_file(str(out))
    with safe_open(str(out), framework="numpy") as f:
        meta = f.metadata()
    paths, names = json.loads(meta["paths"]), json.loads(meta["class_names"])
    assert names == ["red", "green"] and [p.endswith(f"v{i}.mp4") for i, p in enumerate(paths)] == [True] * 3
    assert d["labels"].tolist() == [0, 1, 0]
    per_video = [load_tensors(tmp_path / "feats" / f"v{i}.safetensors")[0]["features"].numpy() for i in range(3)]
    assert np.array_equal(d["features"], np.concatenate(per_video))
    assert d["video_index"].tolist() == [i for i, f in enumerate(per_video) for _ in range(len(f))]
