"""V-JEPA 2.1: strict conversion of official-layout checkpoints and parity with an independent float64 reference.

Two synthetic checkpoints with the official key names (random values, `_v21_reference`):
- "B": like the released ViT-B/L: the encoder under `ema_encoder`, no prefixes, a 1-level predictor that predicts
  a wider (distillation teacher's) feature, 12 encoder blocks (official levels 2, 5, 8, 11);
- "G": like the released ViT-g/G and training checkpoints: `target_encoder` + `encoder` + counters, keys prefixed
  `module.backbone.`, a 4-level predictor (Linear-GELU-Linear in), 4 encoder blocks (levels evenly spaced).
Width 192 with 3 heads gives head dim 64 as in every released encoder; the predictors are 384 wide with 12
heads (head dim 32) as released.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from _v21_reference import (
    encoder_shapes,
    official_checkpoint,
    predictor_shapes,
    random_state,
    ref_encoder,
    ref_predictor,
)

from vjepa_cli.config.model import V21_FIELDS, V21_RELEASES, ModelConfig, v21_release
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.convert import read_weights
from vjepa_cli.io.tensors import read_metadata
from vjepa_cli.models import build_encoder, build_predictor
from vjepa_cli.models.load import load_model, run_convert, save_model_file

pytestmark = pytest.mark.usefixtures("one_thread")

DIM, HIDDEN, HEADS = 192, 768, 3
KINDS = {
    "B": dict(depth=12, levels=1, out_dim=256, key="ema_encoder", prefix="", size=(64, 4), seed=1),
    "G": dict(depth=4, levels=4, out_dim=DIM, key="target_encoder", prefix="module.backbone.", size=None, seed=2),
}
TOL = 1e-4  # fp32 model against the float64 reference
GRID = (2, 4, 4)  # 4 frames at 64 px


@pytest.fixture(scope="module", params=list(KINDS))
def release(request, tmp_path_factory):
    kind = KINDS[request.param]
    enc = random_state(encoder_shapes(DIM, kind["depth"], HIDDEN), kind["seed"])
    pred = random_state(predictor_shapes(DIM, 2, kind["levels"], kind["out_dim"]), kind["seed"] + 10)
    d = tmp_path_factory.mktemp(f"v21{request.param}")
    path = d / "ckpt.pt"
    torch.save(official_checkpoint(enc, pred, key=kind["key"], prefix=kind["prefix"]), path)
    img, frames = kind["size"] or (None, None)
    res = run_convert(path, d / "model.safetensors", img_size=img, num_frames=frames)
    return dict(kind, name=request.param, enc=enc, pred=pred, path=path, res=res, model=load_model(res.output))


def _x(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _ids(n=32, keep=20, b=2, seed=0):
    perm = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(seed + i)) for i in range(b)])
    return perm[:, :keep], perm[:, keep:]


# ---------------------------------------------------------------- conversion
def test_official_layouts_convert_strictly(release):
    r, cfg = release["res"], release["model"].config
    assert r.source_format == "official-v2.1" and r.encoder_key == release["key"]
    assert cfg.generation == "2.1" and cfg.pos_embed == "rope"
    assert (cfg.rope_interleaved, cfg.rope_interp_grid, cfg.pred_rope_interp_grid) == (True, 16, 0)
    assert cfg.image_embed and cfg.modality_embed and cfg.pred_context_head
    assert cfg.levels == ((2, 5, 8, 11) if release["depth"] == 12 else (0, 1, 2, 3))
    assert (cfg.pred_levels, cfg.pred_out_dim) == (release["levels"], None if release["out_dim"] == DIM else 256)
    assert (cfg.pred_num_mask_tokens, cfg.pred_num_heads, cfg.pred_embed_dim, cfg.num_heads) == (8, 12, 384, HEADS)
    assert len(release["enc"]) == 2 + 4 + 8 + 12 * release["depth"]
    w = read_weights(r.output)  # every tensor written as read, nothing added or dropped
    for mine, theirs in ((w.encoder, release["enc"]), (w.predictor, release["pred"])):
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs)
    if release["depth"] == 4:
        assert any("evenly spaced" in n for n in r.notes)


def test_converted_file_records_the_21_options_and_v2_files_do_not(release, tmp_path):
    stored = json.loads(read_metadata(release["res"].output)["config"])
    assert stored["rope_interleaved"] is True and stored["levels"] == list(release["model"].config.levels)
    v2 = ModelConfig(arch="vit_tiny", depth=1, pos_embed="rope", pred_depth=1, pred_embed_dim=96, pred_num_heads=12)
    path = save_model_file(tmp_path / "v2.safetensors", build_encoder(v2), build_predictor(v2), v2, {})
    assert not set(V21_FIELDS) & set(json.loads(read_metadata(path)["config"]))  # V-JEPA 2 records unchanged


def test_load_model_reads_the_official_file_directly(release):
    direct = load_model(release["path"])
    x = _x((2, 3, 4, 64, 64))
    with torch.no_grad():
        assert torch.equal(direct.encoder(x), release["model"].encoder(x))


# ---------------------------------------------------------------- encoder parity
ENCODER_CASES = {  # input shape, masked, hierarchical
    "video": ((2, 3, 4, 64, 64), False, False),
    "image": ((2, 3, 1, 64, 64), False, False),
    "non-square": ((2, 3, 4, 64, 48), False, False),
    "masks": ((2, 3, 4, 64, 64), True, False),
    "hierarchical": ((2, 3, 4, 64, 64), False, True),
    "image-masks-hierarchical": ((2, 3, 1, 64, 80), True, True),
}


@pytest.mark.parametrize("case", list(ENCODER_CASES))
def test_encoder_matches_reference(release, case):
    shape, masked, hier = ENCODER_CASES[case]
    x = _x(shape, seed=3)
    n = (shape[2] // 2 or 1) * (shape[3] // 16) * (shape[4] // 16)
    keep = _ids(n, keep=n * 2 // 3)[0] if masked else None
    with torch.no_grad():
        got = release["model"].encoder(x, None if keep is None else [keep], hierarchical=hier)
    ref = ref_encoder(release["enc"], x, heads=HEADS, levels=list(release["model"].config.levels), masks=keep,
                      hierarchical=hier)
    assert got.shape == ref.shape == (2, keep.shape[1] if masked else n, DIM * (4 if hier else 1))
    assert (got.double() - ref).abs().max() < TOL


@pytest.mark.parametrize("change", [{"rope_interleaved": False}, {"rope_interp_grid": 0}])
def test_v2_rope_or_raw_positions_miss_the_reference(release, change):
    """The same weights with V-JEPA 2's tiled RoPE, or without the 16-patch rescaling, give other features."""
    m = release["model"]
    enc = build_encoder(dataclasses.replace(m.config, **change))
    enc.load_state_dict(m.encoder.state_dict())
    x = _x((2, 3, 4, 64, 64), seed=3)
    with torch.no_grad():
        got = enc.eval()(x)
    ref = ref_encoder(release["enc"], x, heads=HEADS, levels=list(m.config.levels))
    assert (got.double() - ref).abs().max() > 0.05


def test_hierarchical_output_ends_with_the_default_output(release):
    enc = release["model"].encoder
    for x in (_x((2, 3, 4, 64, 64)), _x((2, 3, 1, 48, 64))):
        with torch.no_grad():
            assert torch.equal(enc(x, hierarchical=True)[..., -DIM:], enc(x))


def test_image_input_four_dims_is_the_one_frame_path(release):
    x = _x((2, 3, 64, 64))
    with torch.no_grad():
        assert torch.equal(release["model"].encoder(x), release["model"].encoder(x.unsqueeze(2)))


# ---------------------------------------------------------------- predictor parity
@pytest.mark.parametrize("modality", ["video", "image"])
def test_predictor_matches_reference(release, modality):
    pred, levels = release["model"].predictor, release["levels"]
    grid = (1, 4, 4) if modality == "image" else GRID
    ctx_ids, tgt_ids = _ids(grid[0] * 16, keep=10 if modality == "image" else 20, seed=5)
    ctx = _x((2, ctx_ids.shape[1], levels * DIM), seed=6)
    with torch.no_grad():
        tgt, ctx_out = pred(ctx, ctx_ids, tgt_ids, mask_index=3, grid=grid, modality=modality, return_context=True)
        only = pred(ctx, ctx_ids, tgt_ids, mask_index=3, grid=grid, modality=modality)
    ref_t, ref_c = ref_predictor(release["pred"], ctx, ctx_ids, tgt_ids, grid=grid, levels_in=levels, mask_index=3,
                                 modality=modality)
    out = levels * release["out_dim"]
    assert tgt.shape == (2, tgt_ids.shape[1], out) and ctx_out.shape == (2, ctx_ids.shape[1], out)
    assert (tgt.double() - ref_t).abs().max() < TOL and (ctx_out.double() - ref_c).abs().max() < TOL
    # the same targets with or without the context outputs, up to the rounding of a product over more rows
    # (oneDNN's kernels may block a 30-row product differently from a 10-row one)
    assert (only - tgt).abs().max() <= 1e-6 * tgt.abs().max()


def test_predictor_default_grid_is_the_converted_size(release):
    cfg = release["model"].config
    assert cfg.grid() == (GRID if release["size"] else (32, 24, 24))  # 2.1 hub size when not given
    if release["size"]:
        ctx_ids, tgt_ids = _ids(seed=7)
        ctx = _x((2, 20, release["levels"] * DIM))
        with torch.no_grad():
            pred = release["model"].predictor
            assert torch.equal(pred(ctx, ctx_ids, tgt_ids), pred(ctx, ctx_ids, tgt_ids, grid=GRID))


def test_modality_vectors_change_the_prediction(release):
    pred = release["model"].predictor
    ctx_ids, tgt_ids = _ids(seed=8)
    ctx = _x((2, 20, release["levels"] * DIM))
    with torch.no_grad():
        video, image = (pred(ctx, ctx_ids, tgt_ids, grid=GRID, modality=m) for m in ("video", "image"))
    assert (video - image).abs().max() > 1e-3
    with pytest.raises(ValueError, match="modality"):
        pred(ctx, ctx_ids, tgt_ids, grid=GRID, modality="audio")


# ---------------------------------------------------------------- warnings and mismatch reports
def test_convert_says_which_input_size_it_assumed(release, tmp_path, run_cli):
    r = run_cli("convert", release["path"], "-o", tmp_path / "m.safetensors", "--json")
    assert r.code == 0, r
    info = json.loads(r.out)  # stdout stays one JSON object
    warning = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "64 frames at 384 px" in warning[0] and "32x24x24" in warning[0]
    assert "--img-size" in warning[0] and "--num-frames" in warning[0] and info["warnings"]
    r = run_cli("convert", release["path"], "-o", tmp_path / "n.safetensors", "--img-size", "256", "--num-frames",
                "16")
    assert r.code == 0 and "warning" not in r.err and "V-JEPA 2.1: interleaved RoPE" in r.out


def test_v2_checkpoint_conversion_warns_too(tmp_path, run_cli):
    cfg = ModelConfig(arch="vit_tiny", depth=1, pos_embed="rope", pred_depth=1, pred_embed_dim=96, pred_num_heads=12)
    sd = lambda m: {"module." + k: v for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"target_encoder": sd(build_encoder(cfg)), "predictor": sd(build_predictor(cfg))}, tmp_path / "v2.pt")
    r = run_cli("convert", tmp_path / "v2.pt", "-o", tmp_path / "v2.safetensors")
    assert r.code == 0 and "warning: assumed 64 frames at 256 px (the V-JEPA 2 hub's size)" in r.err
    r = run_cli("convert", tmp_path / "v2.pt", "-o", tmp_path / "v2b.safetensors", "--num-frames", "16")
    assert "warning: assumed 16 frames at 256 px" in r.err and "pass --img-size" in r.err


MISMATCHES = {  # where, edit, expected counts, the key named
    "missing": ("enc", lambda sd: sd.pop("norms_block.2.bias"), "1 missing, 0 unexpected, 0 wrong shape",
                "norms_block.2.bias"),
    "unexpected": ("enc", lambda sd: sd.update({"norm.weight": torch.ones(DIM)}),
                   "0 missing, 1 unexpected, 0 wrong shape", "norm.weight"),
    "shape": ("enc", lambda sd: sd.update({"patch_embed_img.proj.weight": torch.zeros(DIM, 3, 2, 16, 16)}),
              "0 missing, 0 unexpected, 1 wrong shape", "patch_embed_img.proj.weight"),
    "predictor": ("pred", lambda sd: sd.pop("predictor_proj_context.bias"), "1 missing, 0 unexpected, 0 wrong shape",
                  "predictor_proj_context.bias"),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_a_wrong_key_gives_one_error_naming_it(release, case, tmp_path, run_cli):
    where, edit, counts, key = MISMATCHES[case]
    enc, pred = dict(release["enc"]), dict(release["pred"])
    edit(enc if where == "enc" else pred)
    path = tmp_path / "bad.pt"
    torch.save(official_checkpoint(enc, pred, key=release["key"], prefix=release["prefix"]), path)
    r = run_cli("convert", path, "-o", tmp_path / "bad.safetensors")
    assert r.code == 1 and not (tmp_path / "bad.safetensors").exists()
    err = r.err.splitlines()
    assert err[0].startswith("error:") and counts in err[0] and "Traceback" not in r.err
    assert [line.split()[0] for line in err[2:] if line.strip()] == [key]
    with pytest.raises(VjepaError, match=key.replace(".", r"\.")):
        load_model(path)


def test_which_picks_the_right_encoder(release, tmp_path, run_cli):
    r = run_cli("convert", release["path"], "-o", tmp_path / "c.safetensors", "--which", "context", "--json")
    if release["key"] == "ema_encoder":  # the released B/L files hold the EMA encoder only
        assert r.code == 1 and "no 'encoder' entry" in r.err and "ema_encoder" in r.err
    else:
        assert r.code == 0 and json.loads(r.out)["encoder_key"] == "encoder"
    r = run_cli("convert", release["path"], "-o", tmp_path / "t.safetensors", "--which", "target", "--json")
    assert r.code == 0 and json.loads(r.out)["encoder_key"] == release["key"]


# ---------------------------------------------------------------- released sizes and V-JEPA 1/2 models
RELEASED = {  # encoder params, predictor params: the official constructors (reference doc section 1)
    "vjepa2_1_vitb_dist_vitG_384": (86_833_152, 22_874_752),
    "vjepa2_1_vitl_dist_vitG_384": (304_680_960, 22_973_056),
    "vjepa2_1_vitg_384": (1_013_267_968, 55_400_704),
    "vjepa2_1_vitG_384": (1_845_216_768, 59_433_472),
}


@pytest.mark.parametrize("name", list(V21_RELEASES))
def test_released_sizes_param_counts_and_official_layout(name):
    cfg = v21_release(name)
    with torch.device("meta"):  # no memory for the 1B / 2B models
        enc, pred = build_encoder(cfg), build_predictor(cfg)
    counts = tuple(sum(p.numel() for p in m.parameters()) for m in (enc, pred))
    assert counts == RELEASED[name]
    dim, depth, _, ratio = cfg.resolved_sizes()
    _, pred_depth, levels, out_dim = V21_RELEASES[name]
    want_enc = encoder_shapes(dim, depth, int(dim * ratio))
    want_pred = predictor_shapes(dim, pred_depth, levels, out_dim or dim)
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == want_enc
    assert {k: tuple(v.shape) for k, v in pred.state_dict().items()} == want_pred
    assert (len(want_enc), len(want_pred)) == ({12: 158, 24: 302, 40: 494, 48: 590}[depth], 162 if levels == 1 else 308)


def test_v2_models_refuse_the_21_calls():
    cfg = ModelConfig(arch="vit_tiny", depth=1, pos_embed="rope", img_size=32, num_frames=4, pred_depth=1,
                      pred_embed_dim=96, pred_num_heads=12)
    enc, pred = build_encoder(cfg), build_predictor(cfg)
    with pytest.raises(VjepaError, match="no hierarchical levels"):
        enc(torch.zeros(1, 3, 4, 32, 32), hierarchical=True)
    with pytest.raises(VjepaError, match="no context head"):
        pred(torch.zeros(1, 2, 192), torch.tensor([[0, 1]]), torch.tensor([[2]]), return_context=True)


def test_transformers_export_refuses_21(release):
    from vjepa_cli.io.convert import pack, to_hf_state_dict

    w = read_weights(release["res"].output)
    with pytest.raises(VjepaError, match="V-JEPA 2.1"):
        to_hf_state_dict(pack(w.encoder, w.predictor), release["model"].config)


def test_21_options_are_validated_and_levels_default_to_the_official_blocks():
    from vjepa_cli.config.model import OFFICIAL_LEVELS, default_levels

    assert {d: default_levels(d) for d in OFFICIAL_LEVELS} == {12: (2, 5, 8, 11), 24: (5, 11, 17, 23),
                                                               40: (9, 19, 29, 39), 48: (11, 23, 37, 47)}
    assert default_levels(4) == (0, 1, 2, 3) and default_levels(8) == (1, 3, 5, 7)
    base = dict(arch="vit_tiny", depth=4, pos_embed="rope")
    for bad, match in [(dict(levels=(0, 1, 2)), "ending with the last block"), (dict(levels=(2, 1, 3)), "increasing"),
                       (dict(levels=(0, 1, 2, 3), pred_levels=2), "pred_levels"),
                       (dict(pos_embed="sincos", rope_interleaved=True), "need pos_embed 'rope'"),
                       (dict(pred_out_dim=0), "pred_out_dim")]:
        with pytest.raises(ValueError, match=match):
            ModelConfig(**{**base, **bad})
