"""Parity with the `transformers` V-JEPA 2 port: weights converted by `vjepa convert` must give the same encoder
and predictor outputs as `VJEPA2Model` (fp32, max-abs <= 2e-5), and `write_hf_dir` must give back a directory that
`VJEPA2Model.from_pretrained` loads to the same model.

A tiny random model with every parameter perturbed (LayerNorm weights/biases and mask tokens are not 1/0), so a
wrong LayerNorm eps, tanh-GELU, textbook RoPE or the wrong mask token would all fail (see
shared/reference/hf-vjepa2.md, section 4).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers")

from vjepa_cli.io.convert import unpack, write_hf_dir  # noqa: E402
from vjepa_cli.io.tensors import load_tensors, save_tensors  # noqa: E402
from vjepa_cli.models.load import load_model  # noqa: E402
from vjepa_cli.models.vit import gather_tokens  # noqa: E402

TOL = 2e-5
B, T, S = 2, 4, 64  # batch, frames, crop


def _hf_config(**kw):
    base = dict(
        hidden_size=96, num_hidden_layers=2, num_attention_heads=3, crop_size=S, frames_per_clip=T,
        patch_size=16, tubelet_size=2, pred_hidden_size=96, pred_num_hidden_layers=2, pred_num_attention_heads=4,
        pred_num_mask_tokens=10, attn_implementation="eager",
    )
    base.update(kw)
    return transformers.VJEPA2Config(**base)


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A perturbed tiny VJEPA2Model saved with save_pretrained; returns (model, directory)."""
    torch.manual_seed(0)  # transformers initialises from the global RNG; only this fixture relies on it
    model = transformers.VJEPA2Model(_hf_config()).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    d = tmp_path_factory.mktemp("hf") / "vjepa2-tiny"
    model.save_pretrained(d)
    return model, d


@pytest.fixture(scope="module")
def converted(hf_model, tmp_path_factory):
    """`vjepa convert` of the HF directory (through the real CLI), loaded with load_model."""
    from vjepa_cli.cli import main

    out = tmp_path_factory.mktemp("ours") / "tiny.safetensors"
    try:
        main(["convert", str(hf_model[1]), "-o", str(out)])
    except SystemExit as e:
        assert e.code in (0, None), f"vjepa convert exited {e.code}"
    return load_model(out), out


def _video(seed: int, t: int = T, h: int = S, w: int = S) -> torch.Tensor:
    return torch.randn(B, 3, t, h, w, generator=torch.Generator().manual_seed(seed))  # ours: (B, C, T, H, W)


def _hf(model, x, **kw):
    with torch.no_grad():
        return model(pixel_values_videos=x.permute(0, 2, 1, 3, 4), **kw)  # HF: (B, T, C, H, W)


def test_convert_cli_reads_hf_directory(hf_model, run_cli, tmp_path):
    r = run_cli("convert", hf_model[1], "-o", tmp_path / "m.safetensors", "--json")
    assert r.code == 0, r
    import json

    info = json.loads(r.out.strip().splitlines()[-1])
    assert info["source_format"] == "hf"
    c = info["config"]
    assert (c["embed_dim"], c["depth"], c["num_heads"], c["pos_embed"]) == (96, 2, 3, "rope")
    assert (c["pred_embed_dim"], c["pred_depth"], c["pred_num_heads"], c["pred_num_mask_tokens"]) == (96, 2, 4, 10)
    assert (c["img_size"], c["num_frames"], c["pred_sort_tokens"]) == (S, T, True)


def test_encoder_matches_hf(hf_model, converted):
    m, _ = converted
    x = _video(2)
    ref = _hf(hf_model[0], x, skip_predictor=True).last_hidden_state
    with torch.no_grad():
        ours = m.encoder(x)
    assert ours.shape == ref.shape == (B, (T // 2) * (S // 16) ** 2, 96)
    assert (ours - ref).abs().max().item() <= TOL


def test_predictor_matches_hf_default_masks(hf_model, converted):
    m, _ = converted
    x = _video(3)
    ref = _hf(hf_model[0], x).predictor_output.last_hidden_state  # context = target = all tokens, mask_index 1
    with torch.no_grad():
        z = m.encoder(x)
        ids = torch.arange(z.shape[1]).expand(B, -1)
        ours = m.predictor(z, ids, ids, mask_index=1)
        other_token = m.predictor(z, ids, ids, mask_index=0)
    assert (ours - ref).abs().max().item() <= TOL
    assert (other_token - ref).abs().max().item() > 1e-2  # the test can tell mask tokens apart


def test_predictor_matches_hf_random_disjoint_masks(hf_model, converted):
    m, _ = converted
    x = _video(4)
    n = (T // 2) * (S // 16) ** 2
    g = torch.Generator().manual_seed(5)
    perm = torch.stack([torch.randperm(n, generator=g) for _ in range(B)])
    ctx, tgt = perm[:, :10], perm[:, 10:27]  # disjoint, unsorted, different per sample, 5 tokens unused
    ref = _hf(hf_model[0], x, context_mask=[ctx], target_mask=[tgt]).predictor_output.last_hidden_state
    with torch.no_grad():
        z = m.encoder(x)
        ours = m.predictor(gather_tokens(z, ctx), ctx, tgt, mask_index=1)
    assert ours.shape == (B, 17, 96)
    assert (ours - ref).abs().max().item() <= TOL


def test_load_model_reads_hf_files_directly(hf_model, converted):
    m, _ = converted
    x = _video(6)
    with torch.no_grad():
        want = m.encoder(x)
        for src in (hf_model[1], hf_model[1] / "model.safetensors"):  # the folder, and the file beside config.json
            direct = load_model(src)
            assert direct.metadata["source_format"] == "hf"
            assert direct.config == m.config
            assert torch.equal(direct.encoder(x), want)


def test_non_square_rope_positions_match_reference(hf_model, converted):
    """HF takes its RoPE grid from crop_size; with one tubelet and W' = crop/16 its positions are right for a
    non-square input, so a crop-96 HF model with the same weights is an explicit reference for H' != W'."""
    m, _ = converted
    wide = transformers.VJEPA2Model(_hf_config(crop_size=96)).eval()
    wide.load_state_dict(hf_model[0].state_dict())
    x = _video(7, t=2, h=64, w=96)  # grid 1 x 4 x 6
    ref = _hf(wide, x, skip_predictor=True).last_hidden_state
    with torch.no_grad():
        ours = m.encoder(x)
        square_grid = _hf(hf_model[0], x, skip_predictor=True).last_hidden_state  # HF with the wrong grid
    assert (ours - ref).abs().max().item() <= TOL
    assert (ours - square_grid).abs().max().item() > 1e-3  # positions matter: the reference is not trivial


def test_write_hf_dir_round_trip(hf_model, converted, tmp_path):
    m, path = converted
    tensors, _ = load_tensors(path)
    enc, pred = unpack(tensors)
    out = write_hf_dir(tmp_path / "hf-export", enc, pred, m.config)
    back = transformers.VJEPA2Model.from_pretrained(out, attn_implementation="eager").eval()
    orig = hf_model[0].state_dict()
    got = back.state_dict()
    assert set(got) == set(orig)
    for k, v in orig.items():
        assert torch.equal(got[k], v), k
    x = _video(8)
    a = _hf(back, x)
    b = _hf(hf_model[0], x)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.equal(a.predictor_output.last_hidden_state, b.predictor_output.last_hidden_state)


def test_sharded_hf_directory(hf_model, converted, tmp_path):
    """A save_pretrained directory with the weights split in shards and an index."""
    import json
    import shutil

    tensors, _ = load_tensors(hf_model[1] / "model.safetensors")
    shutil.copy(hf_model[1] / "config.json", tmp_path / "config.json")
    names = sorted(tensors)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        save_tensors(tmp_path / shard, {k: tensors[k] for k in part}, {"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    x = _video(9)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path).encoder(x), converted[0].encoder(x))
