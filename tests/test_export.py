"""`vjepa export`: checkpoint -> model file -> `load_model` gives the same outputs as the checkpoint's encoders;
`--format hf` loads in `transformers.VJEPA2Model` with the same features."""

from __future__ import annotations

import json
import os

import pytest
import torch
from _eval_helpers import tiny_config

from vjepa_cli.config._load import to_dict
from vjepa_cli.io.checkpoint import checkpoint_name, save_checkpoint, write_latest
from vjepa_cli.io.tensors import load_tensors
from vjepa_cli.models import build_encoder, build_predictor

ROPE = dict(embed_dim=96, num_heads=3, img_size=64, num_frames=4, pos_embed="rope", pred_embed_dim=96,
            pred_num_heads=4, pred_depth=2)


def _perturbed(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return module.eval()


def _fake_run(root, cfg, step=10):
    """A run directory as `vjepa pretrain` leaves it: checkpoints/step_*.safetensors + latest."""
    enc, tgt, pred = _perturbed(build_encoder(cfg), 1), _perturbed(build_encoder(cfg), 2), _perturbed(build_predictor(cfg), 3)
    tensors = {**{f"encoder.{k}": v for k, v in enc.state_dict().items()},
               **{f"target_encoder.{k}": v for k, v in tgt.state_dict().items()},
               **{f"predictor.{k}": v for k, v in pred.state_dict().items()}}
    ckpt = save_checkpoint(root / "checkpoints" / checkpoint_name(step), tensors,
                           {"step": step, "config": {"model": to_dict(cfg), "seed": 3}, "model": to_dict(cfg.resolve())})
    write_latest(root / "checkpoints", ckpt)
    return enc, tgt, pred, ckpt


def _x(cfg, seed=0):
    return torch.randn(2, 3, 4, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(seed))


def test_export_roundtrip_target_and_context(run_cli, tmp_path):
    import vjepa_cli

    cfg = tiny_config(num_frames=4)
    enc, tgt, pred, ckpt = _fake_run(tmp_path / "run", cfg)
    x = _x(cfg)
    r = run_cli("export", tmp_path / "run", "-o", tmp_path / "t.safetensors", "--json", "--no-predictor")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["step"] == 10 and res["which"] == "target" and res["source"] == str(ckpt)
    m = vjepa_cli.load_model(tmp_path / "t.safetensors")
    assert m.predictor is None
    # the predictor is kept unless --no-predictor (the same rule as `vjepa convert`)
    assert run_cli("export", tmp_path / "run", "-o", tmp_path / "p.safetensors").code == 0
    assert vjepa_cli.load_model(tmp_path / "p.safetensors").predictor is not None
    both = run_cli("export", tmp_path / "run", "-o", tmp_path / "q.safetensors", "--no-predictor", "--with-predictor")
    assert both.code == 1 and "contradict" in both.err
    with torch.inference_mode():
        torch.testing.assert_close(m.encoder(x), tgt(x), atol=0, rtol=0)
        assert not torch.allclose(m.encoder(x), enc(x))  # the EMA target, not the online encoder
    prov = json.loads(load_tensors(tmp_path / "t.safetensors")[1]["provenance"])
    assert prov["step"] == 10 and prov["encoder"] == "target" and prov["recipe_hash"]
    assert prov["seed"] == 3  # the run's seed: `vjepa probe --random-init` rebuilds its init from it
    # the online encoder + predictor, from the checkpoint file itself
    r = run_cli("export", ckpt, "-o", tmp_path / "c.safetensors", "--which", "context", "--with-predictor")
    assert r.code == 0, r
    m = vjepa_cli.load_model(tmp_path / "c.safetensors")
    ids = torch.arange(4).expand(2, -1)  # grid (2, 2, 2): first time step -> second
    tids = torch.arange(4, 8).expand(2, -1)
    with torch.inference_mode():
        torch.testing.assert_close(m.encoder(x), enc(x), atol=0, rtol=0)
        z = enc(x, masks=[ids])
        torch.testing.assert_close(m.predictor(z, ids, tids, grid=(2, 2, 2)), pred(z, ids, tids, grid=(2, 2, 2)))
    # bf16 weights; existing output refused without --overwrite
    r = run_cli("export", tmp_path / "run", "-o", tmp_path / "b.safetensors", "--dtype", "bf16")
    assert r.code == 0 and all(v.dtype == torch.bfloat16 for v in load_tensors(tmp_path / "b.safetensors")[0].values()
                               if v.is_floating_point())
    r = run_cli("export", tmp_path / "run", "-o", tmp_path / "b.safetensors")
    assert r.code == 1 and "--overwrite" in r.err


def test_export_errors(run_cli, tmp_path):
    _fake_run(tmp_path / "run", tiny_config(num_frames=4))  # sin-cos
    r = run_cli("export", tmp_path / "run", "-o", tmp_path / "hf", "--format", "hf")
    assert r.code == 1 and "RoPE" in r.err
    r = run_cli("export", tmp_path / "nope", "-o", tmp_path / "x.safetensors")
    assert r.code == 1 and "not found" in r.err
    os.makedirs(tmp_path / "empty")
    r = run_cli("export", tmp_path / "empty", "-o", tmp_path / "x.safetensors")
    assert r.code == 1 and "no checkpoint" in r.err


def test_export_hf_parity_with_transformers(run_cli, tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = tiny_config(**ROPE)
    _, tgt, _, _ = _fake_run(tmp_path / "run", cfg)
    r = run_cli("export", tmp_path / "run", "-o", tmp_path / "hf", "--format", "hf", "--with-predictor")
    assert r.code == 0, r
    hf = transformers.VJEPA2Model.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    x = _x(cfg, 1)
    with torch.inference_mode():
        ours = tgt(x)
        theirs = hf(pixel_values_videos=x.permute(0, 2, 1, 3, 4), skip_predictor=True).last_hidden_state
    assert (ours - theirs).abs().max() <= 2e-5


def test_onnx_export_of_a_model_file_matches_pytorch(tmp_path, run_cli):
    """`--format onnx`: the encoder with a dynamic batch; ONNX Runtime on a batch size other than the traced one
    gives PyTorch's features (RoPE model: the path the legacy exporter could not take)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import numpy as np

    from vjepa_cli import load_model
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.models.load import build_models, save_model_file

    cfg = ModelConfig(arch="vit_tiny", depth=2, pos_embed="rope", img_size=32, num_frames=4, pred_embed_dim=48,
                      pred_depth=1, pred_num_heads=4)
    src = save_model_file(tmp_path / "m.safetensors", *build_models(cfg, True), cfg, {"test": True})
    out = tmp_path / "enc.onnx"
    r = run_cli("export", src, "--format", "onnx", "-o", out, "--json")
    assert r.code == 0, r
    rec = json.loads(r.out)
    assert rec["format"] == "onnx" and rec["onnx_max_abs_diff"] < 1e-4
    x = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["video"]
    (y,) = session.run(None, {"video": x.numpy()})
    with torch.no_grad():
        ref = load_model(src).encoder(x)
    assert y.shape == tuple(ref.shape) == (3, 8, 192)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-4)
    again = run_cli("export", src, "--format", "onnx", "-o", out)
    assert again.code == 1 and "already exists" in again.err
    bad = run_cli("export", src, "--format", "onnx", "-o", tmp_path / "x.onnx", "--size", "40")
    assert bad.code == 1 and "patch" in bad.err and not (tmp_path / "x.onnx").exists()
