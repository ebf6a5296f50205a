"""The feature decoder: layout round trips, the flow-matching sampler and SSIM against closed forms, training
a few steps (files, resume), decoding that beats the mean frame on a trivial synthetic task, pictures from
`vjepa predict / surprise --decoder`, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _eval_helpers import save_tiny_model, tiny_config

from vjepa_cli.config.decoder import DecoderArchConfig, DecoderTrainConfig, FeatureDecoderConfig
from vjepa_cli.infer.image_metrics import gaussian_window, psnr, sharpness, ssim
from vjepa_cli.models.decoder import FeatureDecoder, euler_flow, load_decoder

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["decoder.width=32", "decoder.depth=1", "decoder.num_heads=2", "decoder.refine_channels=8",
         "decoder.sample_steps=3", "data.clips=48", "data.frames=4", "optim.batch_size=8", "optim.lr=3e-3",
         "optim.warmup_steps=2", "checkpoint_every=4", "log_every=2"]


def _tiny_decoder(kind: str, **kw) -> FeatureDecoder:
    cfg = FeatureDecoderConfig(kind=kind, embed_dim=48, patch_size=16, img_size=32, width=32, depth=1,
                               num_heads=2, refine_channels=4, sample_steps=2, **kw)
    return FeatureDecoder(cfg, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", ["regression", "generative"])
def test_layout_and_shapes(kind):
    dec = _tiny_decoder(kind)
    x = torch.rand(3, 2, 32, 32, 3)
    assert torch.equal(dec.unpatchify(dec.patchify(x)), x)
    # token (h, w) of a step carries exactly the pixels of patch (h, w) of both tubelet frames
    tok = dec.patchify(x)  # (3, 4, 2*16*16*3)
    torch.testing.assert_close(tok[1, 3].view(2, 16, 16, 3), x[1, :, 16:, 16:])
    feats = torch.randn(2, 3 * 4, 48)  # 3 time steps of 2x2 patches
    out = dec.decode(feats, torch.Generator().manual_seed(0))
    assert out.shape == (2, 6, 32, 32, 3) and 0 <= out.min() and out.max() <= 1
    s = dec.sample(feats, 2, torch.Generator().manual_seed(0))
    assert s.shape == (2, 2, 6, 32, 32, 3)
    assert (not torch.equal(s[0], s[1])) if kind == "generative" else torch.equal(s[0], s[1])
    if kind == "regression":  # time steps decode independently: the last step alone gives the last frames
        torch.testing.assert_close(dec.decode(feats[:, 8:]), dec.decode(feats)[:, 4:], atol=1e-5, rtol=0)
    loss = dec.loss(feats, torch.rand(2, 6, 32, 32, 3), torch.Generator().manual_seed(0), grad_weight=0.5)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in dec.parameters() if p.requires_grad)


def test_euler_flow_known_answers():
    """Rectified flow from N(0, 1) to N(mu, s^2): the marginal velocity is linear in x and the flow sends x0 to
    mu + s x0 exactly (x_t = t mu + sqrt((1-t)^2 + t^2 s^2) x0); to a point target, Euler is exact at any step
    count (its velocity (mu - x) / (1 - t) lands on mu at the last step)."""
    mu, s = 1.5, 0.3

    def gauss_v(x, t):
        t = t.view(-1, 1)
        return mu + (t * s ** 2 - (1 - t)) / ((1 - t) ** 2 + (t * s) ** 2) * (x - t * mu)

    x0 = torch.randn(256, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(euler_flow(gauss_v, x0, 400), mu + s * x0, atol=5e-3, rtol=0)
    point = euler_flow(lambda x, t: (mu - x) / (1 - t.view(-1, 1)), x0, 3)
    torch.testing.assert_close(point, torch.full_like(x0, mu))


def test_ssim_psnr_closed_forms():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 24, 24, 3, generator=g)
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    # constant images a, b: only the luminance term is left, (2ab + C1) / (a^2 + b^2 + C1)
    x, y = torch.full((1, 16, 16, 3), 0.2), torch.full((1, 16, 16, 3), 0.7)
    want = (2 * 0.2 * 0.7 + 1e-4) / (0.2 ** 2 + 0.7 ** 2 + 1e-4)
    torch.testing.assert_close(ssim(x, y), torch.tensor([want], dtype=torch.float64))
    # y = x + c everywhere: the structure/contrast term is 1 and the luminance term is pointwise
    # (2 mx (mx + c) + C1) / (mx^2 + (mx + c)^2 + C1): check against a direct loop over the windows
    b = (a + 0.1).clamp(max=10)
    k = gaussian_window().numpy()
    an = a[0, :, :, 0].double().numpy()
    vals = []
    for i in range(24 - 10):
        for j in range(24 - 10):
            mx = (k * an[i:i + 11, j:j + 11]).sum()
            vals.append((2 * mx * (mx + 0.1) + 1e-4) / (mx ** 2 + (mx + 0.1) ** 2 + 1e-4))
    torch.testing.assert_close(ssim(a[:1, :, :, :1], b[:1, :, :, :1]), torch.tensor([np.mean(vals)],
                                                                                     dtype=torch.float64))
    torch.testing.assert_close(psnr(x, y), torch.tensor([10 * np.log10(1 / 0.25)], dtype=torch.float64))
    assert sharpness(x).item() == 0 and sharpness(a).min() > 0.2


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A tiny random-init model (32 px, 2x2 patches of 16) and synthetic shapes videos (a coloured shape on a
    textured floor: the colour and place are the whole task)."""
    from vjepa_cli.data.synth import generate_synth

    d = tmp_path_factory.mktemp("decoder")
    model = save_tiny_model(d / "model.safetensors", tiny_config(num_frames=4))
    generate_synth("shapes", d / "shapes", n=30, frames=8, size=32, seed=3, val_fraction=0.2)
    return d, model


def _train(d, model, out, kind="regression", steps=6, resume=False, extra=(), on_step=None):
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.train.decoder import run_decoder_train

    sets = [*SMALL, f"model={model}", f"data.source={d / 'shapes'}", f"decoder.kind={kind}",
            f"optim.steps={steps}", "device=cpu", *extra]
    return run_decoder_train(load_recipe(DecoderTrainConfig, None, sets), out, resume=resume, on_step=on_step)


@pytest.mark.parametrize("kind", ["regression", "generative"])
def test_train_writes_files_and_resumes(shapes, tmp_path, kind):
    d, model = shapes
    out = tmp_path / "dec.safetensors"
    res = _train(d, model, out, kind, steps=4)
    run = tmp_path / "dec.run"
    assert res.output == out and res.steps == 4 and res.kind == kind and res.samples == 48
    assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.jsonl", "checkpoint.safetensors"}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]
    dec = load_decoder(out)
    assert dec.cfg.kind == kind and dec.cfg.embed_dim == 48 and dec.cfg.img_size == 32
    assert dec.decode(torch.randn(1, 8, 48)).shape == (1, 4, 32, 32, 3)
    # a run stopped by Ctrl-C after step 3 and resumed equals one run straight through, bit for bit
    import os
    import signal

    def interrupt(i, info):
        if i == 2:
            os.kill(os.getpid(), signal.SIGINT)

    part = _train(d, model, tmp_path / "b.safetensors", kind, steps=6, on_step=interrupt)
    assert part.interrupted and part.steps == 3 and part.output is None
    _train(d, model, tmp_path / "b.safetensors", kind, steps=6, resume=True)
    once = _train(d, model, tmp_path / "once.safetensors", kind, steps=6)
    for (k, a), (_, b) in zip(load_decoder(tmp_path / "b.safetensors").state_dict().items(),
                              load_decoder(once.output).state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_decoded_frames_beat_the_mean_frame(shapes, tmp_path):
    """After a short training, frames decoded from held-out videos' features are closer to the truth than the
    training set's mean frame (what a decoder that ignored its features would learn)."""
    from vjepa_cli.data.manifest import read_manifest
    from vjepa_cli.train.decoder_data import cut_clips, encode_clips, open_encoder

    d, model = shapes
    res = _train(d, model, tmp_path / "dec.safetensors", steps=150, extra=["data.clips=96", "optim.lr=5e-3"])
    dec = load_decoder(res.output)
    enc = open_encoder(model, torch.device("cpu"))
    train = cut_clips([r.path for r in read_manifest(d / "shapes" / "train.csv")], 48, 4, 32, seed=0)
    val = cut_clips([r.path for r in read_manifest(d / "shapes" / "val.csv")], 12, 4, 32, seed=1)
    feats, frames = encode_clips(enc, val, 8, torch.device("cpu"))
    truth = frames.float() / 255
    decoded = dec.decode(feats)
    mean = torch.from_numpy(train).float().div(255).mean((0, 1)).expand_as(truth)
    assert psnr(decoded, truth).mean() > psnr(mean, truth).mean() + 1.0
    assert (decoded - truth).abs().mean() < 0.8 * (mean - truth).abs().mean()


def test_cli_train_predict_surprise_render(shapes, tmp_path, run_cli):
    from vjepa_cli.data.manifest import read_manifest

    d, model = shapes
    out = tmp_path / "dec.safetensors"
    r = run_cli("decoder", "train", "--model", model, "--data", d / "shapes", "-o", out, "--steps", "2",
                "--kind", "generative", *[x for s in SMALL for x in ("--set", s)], "--device", "cpu", "--dtype", "bf16",
                "--json")
    assert r.code == 0, r
    assert json.loads(r.out.strip().splitlines()[-1])["steps"] == 2
    assert "mixed_precision: bf16" in (tmp_path / "dec.run" / "config.yaml").read_text()  # trained under autocast
    video = read_manifest(d / "shapes" / "val.csv")[0].path
    args = ["--model", model, "--frames", "4", "--frame-step", "1", "--context", "2"]
    r = run_cli("predict", video, "-o", tmp_path / "p.safetensors", *args, "--decoder", out, "--render",
                tmp_path / "p.png", "--json")
    assert r.code == 0, r
    from vjepa_cli.data.media import read_image, read_video

    img = read_image(tmp_path / "p.png")
    assert img.shape[0] > 3 * 64 and img.std() > 10  # rows of actual, decoded actual and 3 samples
    r = run_cli("predict", video, "-o", tmp_path / "p2.safetensors", *args, "--decoder", out, "--render",
                tmp_path / "p.mp4")
    assert r.code == 0, r
    from vjepa_cli.io.tensors import load_tensors

    windows = load_tensors(tmp_path / "p2.safetensors")[0]["predicted"].shape[0]
    assert read_video(tmp_path / "p.mp4").shape[0] == min(4, windows) * 4  # each drawn window's 4 frames
    r = run_cli("surprise", video, "-o", tmp_path / "s", *args[:-1], "2", "--decoder", out)
    assert r.code == 0, r
    assert (tmp_path / "s" / (video.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".decoded.png")).is_file()


def test_cli_errors_are_one_line(shapes, tmp_path, run_cli):
    from vjepa_cli.data.manifest import read_manifest

    d, model = shapes
    r = run_cli("decoder", "train", "--model", tmp_path / "nope.safetensors", "--data", d / "shapes", "-o",
                tmp_path / "x.safetensors")
    assert r.code == 1 and "not found" in r.err and len(r.err.strip().splitlines()) == 1
    r = run_cli("decoder", "train", "--model", model, "--data", tmp_path / "none.csv", "-o", tmp_path / "x.safetensors")
    assert r.code == 1 and "data not found" in r.err and not (tmp_path / "x.run").exists()
    video = read_manifest(d / "shapes" / "val.csv")[0].path
    args = ["--model", model, "--frames", "4", "--frame-step", "1", "--context", "2"]
    r = run_cli("predict", video, "-o", tmp_path / "p.safetensors", *args, "--decoder", tmp_path / "no.safetensors")
    assert r.code == 1 and "decoder file not found" in r.err and len(r.err.strip().splitlines()) == 1
    # a decoder for an encoder of another width: refused before any prediction is written
    wide = FeatureDecoder(FeatureDecoderConfig.for_encoder(DecoderArchConfig(width=32, depth=1, num_heads=2),
                                                           embed_dim=64, patch_size=16, tubelet_size=2, img_size=32))
    from vjepa_cli.models.decoder import save_decoder

    save_decoder(tmp_path / "wide.safetensors", wide, {})
    for cmd in (["predict", video, "-o", tmp_path / "p.safetensors"], ["surprise", video, "-o", tmp_path / "s"]):
        r = run_cli(*cmd, *args, "--decoder", tmp_path / "wide.safetensors")
        assert r.code == 1 and "width 64" in r.err and "width 48" in r.err, r
        assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "p.safetensors").exists() and not (tmp_path / "s").exists()
    r = run_cli("predict", video, "-o", tmp_path / "p.safetensors", *args, "--render", tmp_path / "x.png")
    assert r.code == 1 and "--render needs --decoder" in r.err
    r = run_cli("predict", video, "-o", tmp_path / "p.safetensors", *args, "--decoder", tmp_path / "wide.safetensors",
                "--render", tmp_path / "x.gif")
    assert r.code == 1 and ".png or .mp4" in r.err
    r = run_cli("predict", video, "-o", tmp_path / "p.safetensors", *args, "--decoder", model)
    assert r.code == 1 and "not a decoder file" in r.err
    (tmp_path / "r.yaml").write_text("decoder: {widht: 64}\n")
    r = run_cli("decoder", "train", "--model", model, "--data", d / "shapes", "-o", tmp_path / "x.safetensors",
                "--recipe", tmp_path / "r.yaml")
    assert r.code == 1 and "widht" in r.err and "width" in r.err and len(r.err.strip().splitlines()) == 1
    r = run_cli("decoder", "train", "--model", model, "--data", d / "shapes", "-o", tmp_path / "x.pt")
    assert r.code == 1 and ".safetensors" in r.err
