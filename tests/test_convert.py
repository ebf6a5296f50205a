"""`vjepa convert`, `load_model` and our model-file format, on official-layout checkpoints built from tiny models.

The V-JEPA 1 checkpoint is a dict with `encoder` / `predictor` / `target_encoder` (keys prefixed
`module.backbone.`), optimiser state and counters, as the official training loop writes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
import torch

from vjepa_cli.config._load import to_dict
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.convert import hf_to_ours, pack, read_weights, sniff, to_hf_state_dict, unpack
from vjepa_cli.io.infer_arch import infer_config, sincos_grid
from vjepa_cli.io.tensors import load_tensors, read_metadata, save_tensors
from vjepa_cli.models import build_encoder, build_predictor
from vjepa_cli.models.load import load_model, save_model_file
from vjepa_cli.models.pos_embed import sincos_3d

# 3 x 3 tokens per frame, 2 tubelets: the fallback size heuristics would not guess this grid without the table.
CFG = ModelConfig(arch="vit_tiny", depth=2, img_size=48, num_frames=4, pred_embed_dim=96, pred_depth=2)
PREFIX = "module.backbone."


def _perturbed(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return module.eval()


def _official(enc, tgt, pred, prefix=PREFIX, **extra) -> dict:
    pre = lambda m: {prefix + k: v.clone() for k, v in m.state_dict().items()}  # noqa: E731
    ck = {"encoder": pre(enc), "predictor": pre(pred) if pred is not None else None, "target_encoder": pre(tgt),
          "opt": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
          "scaler": None, "epoch": 3, "loss": 0.25, "batch_size": 2, "world_size": 1, "lr": 1e-4}
    ck.update(extra)
    return ck


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Source modules (context encoder, target encoder, predictor) and their official checkpoint file."""
    g = torch.Generator().manual_seed(0)
    enc = _perturbed(build_encoder(CFG, g), 1)
    tgt = _perturbed(build_encoder(CFG, g), 2)
    pred = _perturbed(build_predictor(CFG, g), 3)
    path = tmp_path_factory.mktemp("ckpt") / "vit_tiny.pth.tar"
    torch.save(_official(enc, tgt, pred), path)
    return {"enc": enc, "tgt": tgt, "pred": pred, "path": path, "ckpt": _official(enc, tgt, pred)}


@pytest.fixture(scope="module")
def converted(src, tmp_path_factory):
    from vjepa_cli.models.load import run_convert

    out = tmp_path_factory.mktemp("out") / "tiny.safetensors"
    run_convert(src["path"], out)
    return out


def _x(seed=0, b=2):
    return torch.randn(b, 3, CFG.num_frames, CFG.img_size, CFG.img_size, generator=torch.Generator().manual_seed(seed))


def _ids(b=2, n=18, kc=7, kt=6, seed=0):
    perm = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(seed + i)) for i in range(b)])
    return perm[:, :kc], perm[:, kc:kc + kt]


@torch.no_grad()
def _same_outputs(m, enc, pred) -> bool:
    x = _x()
    z, z_ref = m.encoder(x), enc(x)
    ok = torch.equal(z, z_ref)
    if pred is not None:
        ctx, tgt = _ids()
        ctx_tok = torch.gather(z_ref, 1, ctx.unsqueeze(-1).expand(-1, -1, z_ref.shape[-1]))
        grid = (2, 3, 3)  # the input's token grid (RoPE predictors otherwise assume the config's)
        ok = ok and torch.equal(m.predictor(ctx_tok, ctx, tgt, mask_index=1, grid=grid),
                                pred(ctx_tok, ctx, tgt, mask_index=1, grid=grid))
    return ok


# ---------------------------------------------------------------- conversion and loading
def test_convert_takes_target_encoder_and_predictor(src, run_cli, tmp_path):
    out = tmp_path / "m.safetensors"
    r = run_cli("convert", src["path"], "-o", out)
    assert r.code == 0, r
    assert "official-v1" in r.out and "vit_tiny" in r.out
    m = load_model(out)
    assert m.config == CFG.resolve()  # sizes, heads (from the width table), 48px / 4 frames read from pos_embed
    assert not m.encoder.training and not m.predictor.training
    assert _same_outputs(m, src["tgt"], src["pred"])
    assert not _same_outputs(m, src["enc"], src["pred"])


def test_convert_which_context(src, run_cli, tmp_path):
    out = tmp_path / "ctx.safetensors"
    r = run_cli("convert", src["path"], "-o", out, "--which", "context", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["encoder_key"] == "encoder"
    assert _same_outputs(load_model(out), src["enc"], src["pred"])


def test_no_predictor(src, run_cli, tmp_path):
    out = tmp_path / "enc.safetensors"
    assert run_cli("convert", src["path"], "-o", out, "--no-predictor").code == 0
    m = load_model(out)
    assert m.predictor is None and read_metadata(out)["has_predictor"] == "false"
    assert all(k.startswith("encoder.") for k in load_tensors(out)[0])
    assert _same_outputs(m, src["tgt"], None)


def test_load_model_reads_official_checkpoint_directly(src, tmp_path):
    m = load_model(src["path"], device="auto")
    assert m.metadata["source_format"] == "official-v1" and m.metadata["encoder_key"] == "target_encoder"
    assert _same_outputs(m, src["tgt"], src["pred"])
    # numpy scalars (loss, lr) are allowed in the pickle; an encoder-only checkpoint falls back to 'encoder'
    ck = {"encoder": src["ckpt"]["target_encoder"], "loss": np.float64(0.25), "lr": np.float32(1e-4), "epoch": 1}
    torch.save(ck, tmp_path / "np.pth.tar")
    m = load_model(tmp_path / "np.pth.tar")
    assert m.predictor is None and m.metadata["encoder_key"] == "encoder" and _same_outputs(m, src["tgt"], None)
    with pytest.raises(VjepaError, match="unknown device"):
        load_model(src["path"], device="gpu0")


def test_metadata_content(src, converted):
    meta = read_metadata(converted)
    assert meta["format"] == "vjepa-model" and meta["format_version"] == "1" and meta["has_predictor"] == "true"
    assert json.loads(meta["config"]) == to_dict(CFG.resolve())
    prov = json.loads(meta["provenance"])
    assert prov["source_format"] == "official-v1" and prov["encoder"] == "target_encoder"
    assert prov["source"] == str(src["path"].resolve())
    assert prov["source_sha256"] == hashlib.sha256(src["path"].read_bytes()).hexdigest()
    assert prov["vjepa_version"] and prov["date"].startswith("20")
    keys = load_tensors(converted)[0]
    assert "encoder.pos_embed" in keys and "predictor.mask_tokens.1" in keys and "encoder.blocks.1.attn.qkv.weight" in keys


def test_dtype_bf16(src, run_cli, tmp_path):
    out = tmp_path / "bf16.safetensors"
    assert run_cli("convert", src["path"], "-o", out, "--dtype", "bf16").code == 0
    tensors, _ = load_tensors(out)
    assert {v.dtype for v in tensors.values()} == {torch.bfloat16}
    ref = src["tgt"].state_dict()["blocks.0.attn.qkv.weight"].to(torch.bfloat16)
    assert torch.equal(tensors["encoder.blocks.0.attn.qkv.weight"], ref)
    m32 = load_model(out)  # default float32 modules holding the bf16-rounded values
    assert next(m32.encoder.parameters()).dtype == torch.float32
    with torch.no_grad():
        diff = (m32.encoder(_x()) - src["tgt"](_x())).abs().max().item()
    assert 0 < diff < 0.1
    m16 = load_model(out, dtype="bf16")
    assert next(m16.encoder.parameters()).dtype == torch.bfloat16
    bad = run_cli("convert", src["path"], "-o", tmp_path / "x.safetensors", "--dtype", "fp8")
    assert bad.code == 2 and "fp8" in bad.err and not (tmp_path / "x.safetensors").exists()  # a choice


def test_save_model_file_round_trip(src, tmp_path):
    out = save_model_file(tmp_path / "saved.safetensors", src["tgt"], src["pred"], CFG, {"by": "test"})
    m = load_model(out)
    assert m.metadata["provenance"] == {"by": "test"} and _same_outputs(m, src["tgt"], src["pred"])


def test_overwrite_refused(src, converted, run_cli):
    before = converted.read_bytes()
    r = run_cli("convert", src["path"], "-o", converted)
    assert r.code == 1 and "already exists" in r.err and "--overwrite" in r.err
    assert converted.read_bytes() == before
    assert run_cli("convert", src["path"], "-o", converted, "--overwrite").code == 0


def test_vjepa2_style_rope_checkpoint(tmp_path, run_cli):
    cfg = ModelConfig(arch="vit_tiny", depth=2, pos_embed="rope", pred_embed_dim=96, pred_depth=2,
                      pred_num_heads=12, pred_num_mask_tokens=3)
    g = torch.Generator().manual_seed(7)
    tgt, pred = _perturbed(build_encoder(cfg, g), 8), _perturbed(build_predictor(cfg, g), 9)
    path = tmp_path / "vitt.pt"
    torch.save(_official(tgt, tgt, pred, prefix="module."), path)
    r = run_cli("convert", path, "-o", tmp_path / "v2.safetensors", "--json")
    assert r.code == 0, r
    info = json.loads(r.out)
    assert info["source_format"] == "official-v2"
    assert info["config"]["pred_num_heads"] == 12 and info["config"]["pred_num_mask_tokens"] == 3
    assert (info["config"]["img_size"], info["config"]["num_frames"]) == (256, 64)  # V-JEPA 2 defaults
    m = load_model(tmp_path / "v2.safetensors")
    assert m.config.pos_embed == "rope" and m.config.sort_tokens
    assert _same_outputs(m, tgt, pred)
    m16 = load_model(tmp_path / "v2.safetensors", dtype="bf16")  # RoPE angles in fp32, attention in bf16
    with torch.no_grad():
        z16 = m16.encoder(_x().to(torch.bfloat16))
        z32 = m.encoder(_x())
    assert z16.dtype == torch.bfloat16 and (z16.float() - z32).abs().max().item() < 0.1 * z32.abs().max().item()


def test_mixed_mask_and_ac_predictor_is_rejected(src, tmp_path, run_cli):  # real 2-AC: tests/test_convert_ac.py
    ck = _official(src["enc"], src["tgt"], src["pred"], prefix="module.")
    ck["predictor"]["module.action_encoder.weight"] = torch.zeros(96, 7)
    path = tmp_path / "ac.pt"
    torch.save(ck, path)
    r = run_cli("convert", path, "-o", tmp_path / "ac.safetensors")
    assert r.code == 1 and "mix mask tokens with action/state encoders" in r.err and "--no-predictor" in r.err
    assert not (tmp_path / "ac.safetensors").exists()
    assert run_cli("convert", path, "-o", tmp_path / "ac.safetensors", "--no-predictor").code == 0


# ---------------------------------------------------------------- strictness
def _rewrite(path, out, edit):
    tensors, meta = load_tensors(path)
    edit(tensors)
    save_tensors(out, tensors, meta)
    return out


@pytest.mark.parametrize("case", ["drop", "add", "shape"])
def test_strict_loading_reports_a_table(converted, tmp_path, case):
    def edit(t):
        if case == "drop":
            del t["encoder.blocks.1.norm2.bias"]
        elif case == "add":
            t["predictor.extra.weight"] = torch.zeros(2, 2)
        else:
            t["encoder.blocks.1.mlp.fc2.bias"] = torch.zeros(7)

    bad = _rewrite(converted, tmp_path / "bad.safetensors", edit)
    with pytest.raises(VjepaError) as e:
        load_model(bad)
    lines = str(e.value).splitlines()
    counts = {"drop": "1 missing, 0 unexpected, 0 wrong shape", "add": "0 missing, 1 unexpected, 0 wrong shape",
              "shape": "0 missing, 0 unexpected, 1 wrong shape"}[case]
    assert counts in lines[0] and "vjepa convert" in lines[0]
    assert lines[1].split() == ["key", "|", "expected", "shape", "|", "found", "shape"]
    row = {"drop": ["blocks.1.norm2.bias", "|", "(192,)", "|", "-"],
           "add": ["extra.weight", "|", "-", "|", "(2,", "2)"],
           "shape": ["blocks.1.mlp.fc2.bias", "|", "(192,)", "|", "(7,)"]}[case]
    assert lines[2].split() == row and len(lines) == 3


def test_strict_table_is_capped(converted, tmp_path):
    bad = _rewrite(converted, tmp_path / "many.safetensors",
                   lambda t: t.update({f"encoder.junk.{i}": torch.zeros(1) for i in range(25)}))
    with pytest.raises(VjepaError) as e:
        load_model(bad)
    lines = str(e.value).splitlines()
    assert "25 unexpected" in lines[0] and len(lines) == 2 + 20 + 1 and lines[-1].strip() == "... and 5 more"


def test_convert_checks_official_checkpoint_strictly(src, tmp_path, run_cli):
    ck = _official(src["enc"], src["tgt"], src["pred"])
    ck["target_encoder"][PREFIX + "blocks.0.attn.bias_extra"] = torch.zeros(3)
    path = tmp_path / "odd.pth.tar"
    torch.save(ck, path)
    r = run_cli("convert", path, "-o", tmp_path / "odd.safetensors")
    assert r.code == 1 and "1 unexpected" in r.err and "blocks.0.attn.bias_extra" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "odd.safetensors").exists()


# ---------------------------------------------------------------- bad inputs
def test_bad_files_give_one_clear_message(src, converted, tmp_path, run_cli):
    data = src["path"].read_bytes()
    (tmp_path / "trunc.pth.tar").write_bytes(data[: len(data) // 2])
    st = converted.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(st[: len(st) // 2])
    (tmp_path / "junk.bin").write_bytes(b"hello, this is not a model\n" * 10)
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "somedir").mkdir()
    save_tensors(tmp_path / "feats.safetensors", {"features": torch.zeros(3, 4), "timestamps": torch.zeros(3, 2)})
    save_tensors(tmp_path / "feats2.safetensors", {"features": torch.zeros(3, 4)}, {"format": "vjepa-features"})
    torch.save({"classifier": {"linear.weight": torch.zeros(2, 2)}, "epoch": 1}, tmp_path / "probe.pt")
    torch.save({"encoder": {"a": torch.zeros(1)}, "cls": torch.nn.Linear(1, 1)}, tmp_path / "unsafe.pt")
    cases = {
        "missing.pth.tar": "file not found",
        "trunc.pth.tar": "truncated or corrupt",
        "trunc.safetensors": "not a readable safetensors file",
        "junk.bin": "is not a model file",
        "empty.pt": "is not a model file",
        "somedir": "directory without config.json + model.safetensors",
        "feats.safetensors": "is a features file",
        "feats2.safetensors": "is a 'vjepa-features' file, not a model file",
        "probe.pt": "attentive-probe checkpoint",
        "unsafe.pt": "needs unsafe pickle loading",
    }
    for name, msg in cases.items():
        with pytest.raises(VjepaError, match=re.escape(msg)):
            load_model(tmp_path / name)
        r = run_cli("convert", tmp_path / name, "-o", tmp_path / "out.safetensors")
        assert r.code == 1 and msg in r.err and "Traceback" not in r.err, (name, r)
        assert len(r.err.strip().splitlines()) <= 2, (name, r.err)  # one message (may wrap once)
    assert not (tmp_path / "out.safetensors").exists()


def test_which_only_for_training_checkpoints(converted, run_cli, tmp_path):
    r = run_cli("convert", converted, "-o", tmp_path / "y.safetensors", "--which", "context")
    assert r.code == 1 and "official training checkpoints only" in r.err


def test_stored_architecture_cannot_be_overridden(converted, run_cli, tmp_path):
    r = run_cli("convert", converted, "-o", tmp_path / "y.safetensors", "--num-heads", "6")
    assert r.code == 1 and "cannot be overridden" in r.err


# ---------------------------------------------------------------- pure pieces
@pytest.mark.parametrize("grid", [(2, 4, 4), (8, 14, 14), (1, 3, 5), (4, 2, 6)])
@pytest.mark.parametrize("uniform", [True, False])
def test_sincos_grid_reads_the_table(grid, uniform):
    for dim in (96, 1000):  # 1000: axis dims 334 each, truncated
        table = sincos_3d(dim, grid, uniform).unsqueeze(0)
        assert sincos_grid(table) == (*grid, uniform)
        assert sincos_grid(table.to(torch.bfloat16)) == (*grid, uniform)
    assert sincos_grid(torch.randn(1, 32, 96, generator=torch.Generator().manual_seed(0))) is None


def test_infer_config_heads_and_overrides():
    enc = {k: torch.empty(v) for k, v in {"patch_embed.proj.weight": (1408, 3, 2, 16, 16),
                                           "blocks.0.mlp.fc1.weight": (6144, 1408),
                                           "blocks.39.norm1.weight": (1408,)}.items()}
    cfg, _ = infer_config(enc)
    assert (cfg.arch, cfg.num_heads, cfg.depth, int(1408 * cfg.mlp_ratio)) == ("vit_giant_xformers", 22, 40, 6144)
    assert (cfg.img_size, cfg.num_frames, cfg.pred_num_heads) == (256, 64, 12)
    enc["patch_embed.proj.weight"] = torch.empty(100, 3, 2, 16, 16)
    with pytest.raises(VjepaError, match="--num-heads"):
        infer_config(enc)
    cfg, _ = infer_config(enc, num_heads=4, img_size=128, num_frames=8)
    assert (cfg.num_heads, cfg.img_size, cfg.num_frames, cfg.arch) == (4, 128, 8, "vit_tiny")


def test_hf_mapping_round_trip(src):
    sd = pack(src["tgt"].state_dict(), src["pred"].state_dict())
    sd = {k: v for k, v in sd.items() if "pos_embed" not in k}  # HF layout has no sin-cos tables
    hf_sd, hf_cfg = to_hf_state_dict(sd, dataclasses.replace(CFG, pos_embed="rope"))
    assert hf_sd["encoder.layer.1.attention.key.weight"].shape == (192, 192)
    assert hf_sd["predictor.embeddings.mask_tokens"].shape == (2, 1, 1, 96)
    assert hf_cfg["pred_num_attention_heads"] == 3 and hf_cfg["crop_size"] == 48
    enc, pred, _ = hf_to_ours(hf_sd)
    assert pack(enc, pred).keys() == sd.keys()
    assert all(torch.equal(pack(enc, pred)[k], v) for k, v in sd.items())
    # a VJEPA2ForVideoClassification state dict: the backbone under `vjepa2.`, plus a head that is dropped
    cls_sd = {f"vjepa2.{k}": v for k, v in hf_sd.items()} | {"classifier.weight": torch.zeros(2, 192)}
    enc2, pred2, notes = hf_to_ours(cls_sd)
    assert pack(enc2, pred2).keys() == sd.keys() and "dropped 1 classification-head tensors" in notes
    with pytest.raises(VjepaError, match="RoPE"):
        to_hf_state_dict(sd, CFG)


def test_sniff_and_unpack(converted, src):
    assert sniff(converted) == "safetensors" and sniff(src["path"]) == "zip"
    enc, pred = unpack({"encoder.a": 1, "predictor.b": 2, "c": 3})
    assert enc == {"a": 1, "c": 3} and pred == {"b": 2}
    w = read_weights(src["path"], which="context", predictor=False)
    assert w.encoder_key == "encoder" and w.predictor is None and "pos_embed" in w.encoder


def test_safetensors_whose_header_length_starts_like_a_pickle(tmp_path):
    """A safetensors header length with low byte 0x80 (1 file in 256) begins with pickle's PROTO byte; such a
    model file must still be read as ours (it was read as a bare state dict, losing its stored config)."""
    from vjepa_cli.io.convert import sniff
    from vjepa_cli.models.load import save_model_file

    enc, pred = build_encoder(CFG, torch.Generator().manual_seed(0)), build_predictor(CFG, torch.Generator())
    for pad in range(300):
        path = save_model_file(tmp_path / "m.safetensors", enc, pred, CFG, {"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert sniff(path) == "safetensors"
    m = load_model(path)
    assert m.metadata["format"] == "vjepa-model" and m.metadata["provenance"]["pad"] == "x" * pad
    assert m.config == load_model(save_model_file(tmp_path / "plain.safetensors", enc, pred, CFG, {})).config
