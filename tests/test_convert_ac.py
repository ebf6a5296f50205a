"""`vjepa convert` / `load_model` on V-JEPA 2-AC (action-conditioned) checkpoints in the official layout.

The checkpoint is built from seeded random tensors with the official key names: `encoder` / `target_encoder`
(prefix `module.backbone.`), `predictor` (prefix `module.`, with `action_encoder`, `state_encoder` and the unused
`extrinsics_encoder`), plus optimiser state and counters. Our `ACPredictor` is checked against a reference forward
written here from the official model's description (explicit per-channel RoPE with the tiled-frequency quirk,
conditioning tokens rotated on time only, explicit block-causal mask), in float64.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.infer_arch import infer_ac_config
from vjepa_cli.io.tensors import load_tensors, read_metadata, save_tensors
from vjepa_cli.models import build_encoder
from vjepa_cli.models.ac_predictor import ACPredictor, ACPredictorConfig
from vjepa_cli.models.load import build_ac_empty, check_weights, load_model, save_model_file

ENC_CFG = ModelConfig(arch="vit_tiny", depth=1, pos_embed="rope")  # 192 wide, 3 heads
P, DEPTH, A, S, E = 192, 2, 7, 7, 6  # predictor width (3 heads of 64, as the released one), blocks, input sizes


pytestmark = pytest.mark.usefixtures("one_thread")


def official_ac_predictor(g: torch.Generator, width: int = P, depth: int = DEPTH, dim: int = 192) -> dict:
    """Official-named 2-AC predictor tensors (no prefix), random but well scaled."""
    r = lambda *s, scale=0.05: torch.randn(*s, generator=g) * scale  # noqa: E731
    sd = {}
    for name, fan_in in (("predictor_embed", dim), ("action_encoder", A), ("state_encoder", S),
                         ("extrinsics_encoder", E)):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = r(width, fan_in, scale=0.3 if fan_in < 8 else 0.05), r(width)
    for i in range(depth):
        b = f"predictor_blocks.{i}."
        for norm in ("norm1", "norm2"):
            sd[b + norm + ".weight"], sd[b + norm + ".bias"] = 1 + r(width, scale=0.1), r(width)
        sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"] = r(3 * width, width, scale=0.08), r(3 * width)
        sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"] = r(width, width), r(width)
        sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"] = r(4 * width, width), r(4 * width)
        sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = r(width, 4 * width), r(width)
    sd["predictor_norm.weight"], sd["predictor_norm.bias"] = 1 + r(width, scale=0.1), r(width)
    sd["predictor_proj.weight"], sd["predictor_proj.bias"] = r(dim, width), r(dim)
    return sd


def official_ac_checkpoint(seed: int = 0) -> tuple[dict, dict, dict]:
    """(checkpoint dict as the official training loop saves it, encoder sd, predictor sd) without prefixes."""
    g = torch.Generator().manual_seed(seed)
    enc = {k: v + torch.randn(v.shape, generator=g) * 0.02 for k, v in build_encoder(ENC_CFG, g).state_dict().items()}
    pred = official_ac_predictor(g)
    ck = {"encoder": {f"module.backbone.{k}": v.clone() for k, v in enc.items()},
          "predictor": {f"module.{k}": v.clone() for k, v in pred.items()},
          "opt": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 4.25e-4, "params": [0]}]},
          "scaler": None, "target_encoder": {f"module.backbone.{k}": v.clone() for k, v in enc.items()},
          "epoch": 315, "loss": 0.5, "batch_size": 8, "world_size": 32, "lr": 4.25e-4}
    return ck, enc, pred


@pytest.fixture(scope="module")
def ac(tmp_path_factory):
    ck, enc, pred = official_ac_checkpoint()
    d = tmp_path_factory.mktemp("ac")
    torch.save(ck, d / "vjepa2-ac-tiny.pt")
    return {"dir": d, "pt": d / "vjepa2-ac-tiny.pt", "ckpt": ck, "enc": enc, "pred": pred}


@pytest.fixture(scope="module")
def converted(ac):
    from vjepa_cli.cli import main

    out = ac["dir"] / "ac.safetensors"
    try:
        main(["convert", str(ac["pt"]), "-o", str(out), "--json"])
    except SystemExit as e:
        assert not e.code
    return out


# ---------------------------------------------------------------- reference forward (official semantics)
def _rope_segment(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., L, d] at positions pos [L]: channel c uses angle pos * omega[c % (d/2)] (tiled frequencies),
    partner of the pair (x_2m, x_2m+1) is (-x_2m+1, x_2m)."""
    d = x.shape[-1]
    k = d // 2
    omega = 1.0 / 10000.0 ** (torch.arange(k, dtype=torch.float64) / k)
    out = torch.empty_like(x)
    for c in range(d):
        theta = pos.to(torch.float64) * omega[c % k]  # (L,)
        partner = -x[..., c + 1] if c % 2 == 0 else x[..., c - 1]
        out[..., c] = x[..., c] * theta.cos() + partner * theta.sin()
    return out


def _rope(x: torch.Tensor, frame, row, col, is_cond) -> torch.Tensor:
    """ACRoPE on q or k [B, h, L, hd]: patches 3 axes (t, row, col); conditioning tokens time only."""
    hd = x.shape[-1]
    d = 2 * ((hd // 3) // 2)
    out = x.clone()
    pt, ct = ~is_cond, is_cond
    for axis, pos in enumerate((frame, row, col)):
        seg = slice(axis * d, (axis + 1) * d)
        out[:, :, pt, seg] = _rope_segment(x[:, :, pt, seg], pos[pt])
    out[:, :, ct, :d] = _rope_segment(x[:, :, ct, :d], frame[ct])  # the rest of their channels: unchanged
    return out


def reference_forward(sd, z, actions, states, heads, grid, extrinsics=None) -> torch.Tensor:
    """The official 2-AC predictor on z [B, T, N, D] -> [B, T, N, D], in float64, one step at a time."""
    sd = {k: v.double() for k, v in sd.items()}
    z, actions, states = z.double(), actions.double(), states.double()
    lin = lambda x, n: x @ sd[n + ".weight"].T + sd[n + ".bias"]  # noqa: E731
    ln = lambda x, n: F.layer_norm(x, x.shape[-1:], sd[n + ".weight"], sd[n + ".bias"], eps=1e-6)  # noqa: E731
    B, T, N, _ = z.shape
    gh, gw = grid
    cond = [lin(actions, "action_encoder"), lin(states, "state_encoder")]
    if extrinsics is not None:
        cond.append(lin(extrinsics.double(), "extrinsics_encoder"))
    C = len(cond)
    x = torch.cat([c.unsqueeze(2) for c in cond] + [lin(z, "predictor_embed")], 2)  # (B, T, C+N, P)
    Pw = x.shape[-1]
    x = x.reshape(B, T * (C + N), Pw)
    L = x.shape[1]
    slot = torch.arange(L) % (C + N)
    frame = torch.div(torch.arange(L), C + N, rounding_mode="floor").double()
    is_cond = slot < C
    patch = (slot - C).clamp(min=0)
    row = torch.div(patch, gw, rounding_mode="floor").double() * (gh / gh)
    col = (patch % gw).double() * (gh / gw)
    allowed = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):  # block-causal: token i sees every token of its own and earlier steps
        for t in range(int(frame[i]) + 1):
            allowed[i, t * (C + N):(t + 1) * (C + N)] = True
    hd = Pw // heads
    for i in range(sum(1 for k in sd if k.endswith(".attn.qkv.weight"))):
        b = f"predictor_blocks.{i}."
        qkv = lin(ln(x, b + "norm1"), b + "attn.qkv").view(B, L, 3, heads, hd)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # (B, h, L, hd)
        q, k = _rope(q, frame, row, col, is_cond), _rope(k, frame, row, col, is_cond)
        att = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(hd)
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        o = torch.einsum("bhij,bhjd->bhid", att, v).transpose(1, 2).reshape(B, L, Pw)
        x = x + lin(o, b + "attn.proj")
        x = x + lin(F.gelu(lin(ln(x, b + "norm2"), b + "mlp.fc1")), b + "mlp.fc2")
    x = x.view(B, T, C + N, Pw)[:, :, C:]
    return lin(ln(x, "predictor_norm"), "predictor_proj")


def _inputs(T: int, N: int, seed: int = 5, ext: bool = False):
    g = torch.Generator().manual_seed(seed)
    z = F.layer_norm(torch.randn(2, T, N, 192, generator=g), (192,))
    out = [z, torch.randn(2, T, A, generator=g), torch.randn(2, T, S, generator=g)]
    return out + ([torch.randn(2, T, E, generator=g)] if ext else [])


# ---------------------------------------------------------------- conversion and loading
def test_convert_infers_and_records_the_ac_architecture(ac, converted, tmp_path, run_cli):
    r = run_cli("convert", ac["pt"], "-o", tmp_path / "again.safetensors", "--json")
    assert r.code == 0, r
    info = json.loads(r.out)
    assert info["source_format"] == "official-v2" and info["predictor_kind"] == "ac" and info["has_predictor"]
    a = info["ac_config"]
    assert (a["embed_dim"], a["pred_embed_dim"], a["depth"], a["num_heads"]) == (192, P, DEPTH, 3)
    assert (a["action_dim"], a["state_dim"], a["extrinsics_dim"], a["use_extrinsics"]) == (A, S, E, False)
    assert tuple(a["grid"]) == (16, 16) and a["mlp_ratio"] == 4.0 and a["pos"] == "rope"  # 256px / 16
    assert any("3 predictor heads" in n for n in info["notes"])
    assert any("extrinsics_encoder stored but unused" in n for n in info["notes"])
    meta = read_metadata(converted)
    assert meta["predictor_kind"] == "ac" and json.loads(meta["ac_config"]) == a
    assert json.loads(meta["config"])["pos_embed"] == "rope"
    tensors, _ = load_tensors(converted)
    assert set(tensors) == {f"encoder.{k}" for k in ac["enc"]} | {f"predictor.{k}" for k in ac["pred"]}
    assert all(torch.equal(tensors[f"predictor.{k}"], v) for k, v in ac["pred"].items())
    human = run_cli("convert", ac["pt"], "-o", tmp_path / "h.safetensors")
    assert human.code == 0 and "action-conditioned" in human.out and "grid=16x16" in human.out


def test_pred_num_heads_override_and_img_size(ac, tmp_path, run_cli):
    r = run_cli("convert", ac["pt"], "-o", tmp_path / "h6.safetensors", "--pred-num-heads", "6", "--img-size", "64",
                "--json")
    assert r.code == 0, r
    info = json.loads(r.out)
    assert info["ac_config"]["num_heads"] == 6 and tuple(info["ac_config"]["grid"]) == (4, 4)
    assert not any("predictor heads" in n for n in info["notes"])
    assert load_model(tmp_path / "h6.safetensors").ac_predictor.predictor_blocks[0].attn.num_heads == 6


def test_load_model_strict_keys_and_both_sources(ac, converted):
    for src in (converted, ac["pt"]):
        m = load_model(src)
        assert m.predictor is None and isinstance(m.ac_predictor, ACPredictor)  # `.predictor` keeps its contract
        assert not m.ac_predictor.training and not m.encoder.training
        got = m.ac_predictor.state_dict()
        assert set(got) == set(ac["pred"]) and all(torch.equal(got[k], v) for k, v in ac["pred"].items())
        assert set(m.encoder.state_dict()) == set(ac["enc"])
        assert m.config.pos_embed == "rope" and m.config.embed_dim == 192
        assert m.ac_predictor.cfg.extrinsics_dim == E and m.ac_predictor.extrinsics_encoder is not None
    assert load_model(ac["pt"]).metadata["predictor_kind"] == "ac"
    m16 = load_model(converted, dtype="bf16")
    assert next(m16.ac_predictor.parameters()).dtype == torch.bfloat16


def test_matches_reference_forward_on_converted_weights(ac, converted):
    m = load_model(converted)
    z, a, s = _inputs(T=3, N=256)
    with torch.no_grad():
        ours = m.ac_predictor(z, a, s)
    ref = reference_forward(ac["pred"], z, a, s, heads=3, grid=(16, 16))
    assert ours.shape == (2, 3, 256, 192)
    err = (ours.double() - ref).abs().max().item()
    assert err < 1e-5, err
    assert ref.abs().mean() > 0.1  # a real signal, not a collapsed output


def test_matches_reference_with_extrinsics_and_a_non_square_grid(ac):
    """The official `use_extrinsics` token and the column scaling H'/W' (identity on square grids)."""
    cfg = ACPredictorConfig(embed_dim=192, pred_embed_dim=P, depth=DEPTH, num_heads=3, action_dim=A, state_dim=S,
                            extrinsics_dim=E, use_extrinsics=True, grid=(2, 3))
    pred = ACPredictor(cfg).eval()
    pred.load_state_dict(ac["pred"], strict=True)
    z, a, s, e = _inputs(T=3, N=6, seed=6, ext=True)
    with torch.no_grad():
        ours = pred(z, a, s, e)
        without = pred(z, a, s, torch.zeros_like(e))
    ref = reference_forward(ac["pred"], z, a, s, heads=3, grid=(2, 3), extrinsics=e)
    assert (ours.double() - ref).abs().max().item() < 1e-5
    assert (ours - without).abs().max() > 1e-3  # the extrinsics token is used
    with pytest.raises(ValueError, match="extrinsics"):
        pred(z, a, s)


def test_official_sizes_are_represented_exactly():
    """Released vjepa2-ac-vitg predictor shapes (meta tensors): 16 heads assumed, depth 24, 305M parameters."""
    enc_cfg = ModelConfig(arch="vit_giant_xformers", pos_embed="rope", img_size=256, num_frames=64, pred_num_heads=12)
    meta = {}
    shapes = {"predictor_embed": (1024, 1408), "action_encoder": (1024, 7), "state_encoder": (1024, 7),
              "extrinsics_encoder": (1024, 6), "predictor_norm": (1024,), "predictor_proj": (1408, 1024)}
    for name, shp in shapes.items():
        meta[f"{name}.weight"] = torch.empty(shp, device="meta")
        meta[f"{name}.bias"] = torch.empty(shp[:1], device="meta")
    for i in range(24):
        b = f"predictor_blocks.{i}."
        for n, shp in (("norm1", (1024,)), ("norm2", (1024,)), ("attn.qkv", (3072, 1024)), ("attn.proj", (1024, 1024)),
                       ("mlp.fc1", (4096, 1024)), ("mlp.fc2", (1024, 4096))):
            meta[b + n + ".weight"] = torch.empty(shp, device="meta")
            meta[b + n + ".bias"] = torch.empty(shp[:1], device="meta")
    cfg, notes = infer_ac_config(meta, enc_cfg)
    assert (cfg.embed_dim, cfg.pred_embed_dim, cfg.depth, cfg.num_heads, cfg.grid) == (1408, 1024, 24, 16, (16, 16))
    assert (cfg.action_dim, cfg.state_dim, cfg.extrinsics_dim, cfg.use_extrinsics) == (7, 7, 6, False)
    assert any("16 predictor heads" in n and "--pred-num-heads" in n for n in notes)
    module, _ = build_ac_empty(cfg)
    check_weights("action-conditioned predictor", {k: tuple(v.shape) for k, v in module.state_dict().items()},
                  meta, "official")  # raises on any difference
    assert sum(p.numel() for p in module.parameters()) == sum(v.numel() for v in meta.values())
    assert cfg.tokens_per_frame == 258  # [action, state, 256 patches]
    with pytest.raises(VjepaError, match="encoder is 1024 wide"):
        infer_ac_config(meta, ModelConfig(arch="vit_large", pos_embed="rope", pred_num_heads=12))


# ---------------------------------------------------------------- strictness
@pytest.mark.parametrize("case", ["drop", "add", "shape"])
def test_mismatch_is_a_readable_table(ac, tmp_path, run_cli, case):
    ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ac["ckpt"].items()}
    pred = ck["predictor"]
    if case == "drop":
        del pred["module.predictor_blocks.1.norm2.bias"]
    elif case == "add":
        pred["module.predictor_blocks.0.attn.extra"] = torch.zeros(3)
    else:
        pred["module.predictor_blocks.0.mlp.fc2.bias"] = torch.zeros(7)
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    r = run_cli("convert", bad, "-o", tmp_path / "bad.safetensors")
    counts = {"drop": "1 missing, 0 unexpected, 0 wrong shape", "add": "0 missing, 1 unexpected, 0 wrong shape",
              "shape": "0 missing, 0 unexpected, 1 wrong shape"}[case]
    lines = r.err.strip().splitlines()
    assert r.code == 1 and "Traceback" not in r.err and not (tmp_path / "bad.safetensors").exists()
    assert lines[0].startswith("error:") and "action-conditioned predictor weights do not fit" in lines[0]
    assert counts in lines[0]
    assert lines[1].split() == ["key", "|", "expected", "shape", "|", "found", "shape"]
    key = {"drop": "predictor_blocks.1.norm2.bias", "add": "predictor_blocks.0.attn.extra",
           "shape": "predictor_blocks.0.mlp.fc2.bias"}[case]
    assert any(line.split()[0] == key for line in lines[2:])
    with pytest.raises(VjepaError, match=counts):
        load_model(bad)


def test_edited_model_file_fails_strictly(converted, tmp_path):
    tensors, meta = load_tensors(converted)
    del tensors["predictor.extrinsics_encoder.bias"]
    save_tensors(tmp_path / "edited.safetensors", tensors, meta)
    with pytest.raises(VjepaError, match="1 missing, 0 unexpected"):
        load_model(tmp_path / "edited.safetensors")


def test_no_predictor_and_round_trips(ac, converted, tmp_path, run_cli):
    assert run_cli("convert", ac["pt"], "-o", tmp_path / "enc.safetensors", "--no-predictor").code == 0
    enc_only = load_model(tmp_path / "enc.safetensors")
    assert enc_only.ac_predictor is None and enc_only.predictor is None
    assert "predictor_kind" not in read_metadata(tmp_path / "enc.safetensors")
    # our file -> convert again keeps the predictor kind; save_model_file stores an ACPredictor's config
    r = run_cli("convert", converted, "-o", tmp_path / "re.safetensors", "--json")
    assert r.code == 0 and json.loads(r.out)["predictor_kind"] == "ac"
    m = load_model(converted)
    save_model_file(tmp_path / "saved.safetensors", m.encoder, m.ac_predictor, m.config, {"source": "test"})
    m2 = load_model(tmp_path / "saved.safetensors")
    z, a, s = _inputs(T=2, N=256, seed=9)
    with torch.no_grad():
        assert torch.equal(m.ac_predictor(z, a, s), m2.ac_predictor(z, a, s))
        x = torch.randn(1, 3, 2, 32, 32)
        assert torch.equal(m.encoder(x), load_model(tmp_path / "re.safetensors").encoder(x))


def test_world_model_commands_and_recipes(converted):
    """A converted 2-AC file serves as a wm recipe's frozen encoder; `wm plan/eval` explain what they need."""
    from vjepa_cli.config.wm import WMEncoderConfig
    from vjepa_cli.models.frozen import load_frozen_encoder
    from vjepa_cli.models.world_model import load_world_model

    enc = load_frozen_encoder(WMEncoderConfig(path=str(converted)), "cpu")
    assert enc.config.embed_dim == 192 and not enc.module.training
    with pytest.raises(VjepaError, match="V-JEPA 2-AC model .*load_model"):
        load_world_model(converted)


def test_pretrain_init_from_an_ac_checkpoint_takes_its_encoder_only(ac):
    from vjepa_cli.models import build_predictor
    from vjepa_cli.train.export import init_weights_from

    enc, pred = build_encoder(ENC_CFG), build_predictor(ENC_CFG)
    before = {k: v.clone() for k, v in pred.state_dict().items()}
    assert init_weights_from(str(ac["pt"]), enc, pred) is None
    for k, v in ac["enc"].items():
        torch.testing.assert_close(enc.state_dict()[k], v, atol=0, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in pred.state_dict().items())  # the mask predictor is untouched
