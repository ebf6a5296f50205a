"""The side-by-side benchmarks' shared parts (`benchmarks/side_by_side.py`) and their skip paths. No timings are
asserted: what is checked is that both sides get the same work (masks, iterations, weights)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_official  # noqa: E402
import side_by_side as sbs  # noqa: E402

from vjepa_cli.config.model import ModelConfig  # noqa: E402


def _args(**kw):
    base = dict(arch="vit_tiny", frames=8, size=128, batch=3, seed=0)
    base.update(kw)
    return argparse.Namespace(**base)


def test_official_benchmark_skips_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VJEPA_OFFICIAL_ROOT", raising=False)
    assert bench_official.main([]) == {"skipped": "no --official-root given (nor $VJEPA_OFFICIAL_ROOT)"}
    out = bench_official.main(["--official-root", str(tmp_path)])
    assert out["skipped"].startswith(f"{tmp_path} lacks src/models/vision_transformer.py")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith('{"skipped"') and "skipped" in lines[-2]


def test_cut_context_masks_are_prefixes_and_targets_unchanged():
    cfg = sbs.step_config(_args())
    _, full = sbs.step_inputs(cfg, _args(), 4)
    _, cut = sbs.step_inputs(cfg, _args(), 4, same_context_length=True)
    assert any(len({c.shape[1] for c in ctx}) > 1 for ctx, _ in full)  # the official masks differ in length
    for (fc, ft), (cc, ct) in zip(full, cut, strict=True):
        k = min(c.shape[1] for c in fc)
        assert all(c.shape == (3, k) for c in cc)
        assert all(torch.equal(a[:, :k], b) for a, b in zip(fc, cc, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(ft, ct, strict=True))


def test_interleaved_alternates_order_and_passes_iterations():
    calls = []
    sides = {"a": lambda i: calls.append(("a", i)), "b": lambda i: calls.append(("b", i))}
    times = sbs.interleaved(sides, warmup=1, repeats=3)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("b", 2), ("a", 2), ("a", 3), ("b", 3)]
    assert [len(t) for t in times.values()] == [3, 3]


def test_our_step_loads_foreign_weights_and_gives_their_loss():
    cfg = ModelConfig(arch="vit_tiny", depth=1, num_frames=4, img_size=64, pred_depth=1, pred_embed_dim=48)
    args = _args(frames=4, size=64, batch=2)
    clips, masks = sbs.step_inputs(cfg, args, 1)
    a, b = sbs.OurStep(cfg, seed=0), sbs.OurStep(cfg, seed=1)
    b.load(a.encoder.state_dict(), a.predictor.state_dict())
    la, lb = a(clips, *masks[0]), b(clips, *masks[0])
    assert la == lb
    assert torch.equal(a.target.blocks[0].attn.qkv.weight, b.target.blocks[0].attn.qkv.weight)  # EMA'd alike


def test_step_gflop_counts_target_context_and_predictor():
    cfg = sbs.step_config(_args(arch="vit_small"))
    _, masks = sbs.step_inputs(cfg, _args(arch="vit_small"), 1)
    t, h, w = cfg.grid()
    per_clip = sbs.encoder_flops(cfg, t * h * w) + sum(
        3 * (sbs.encoder_flops(cfg, kc) + sbs.predictor_flops(cfg, kc, kt)) for kc, kt in sbs.tokens(masks[0]))
    assert abs(sbs.step_gflop(cfg, masks[0], 3) - 3 * per_clip / 1e9) < 1e-6
    assert sbs.tokens(masks[0]) == [[c.shape[1], m.shape[1]] for c, m in zip(*masks[0], strict=True)]


def test_paired_ratios():
    assert sbs.paired([1.0, 3.0, 2.0], [2.0, 2.0, 2.0]) == {"median": 1.0, "min": 0.5, "max": 1.5}
    assert sbs.ratio([1.0, 3.0, 2.0], [2.0, 4.0, 4.0]) == 0.5


def test_hf_encoder_benchmark_runs_both_sides_in_the_dtype_asked():
    """`bench_hf_encoder.py --dtype bf16` casts both encoders and both inputs: the outputs come back in bf16 and
    agree to bf16 rounding, while in fp32 they agree to float rounding (the same weights on both sides)."""
    import pytest

    pytest.importorskip("transformers")
    import bench_hf_encoder

    outs = {}
    for dtype in ("fp32", "bf16"):
        args = argparse.Namespace(frames=4, size=32, seed=0, batch=2, dtype=dtype)
        ours, hf, _ = bench_hf_encoder.build("vit_tiny", args, "both")
        f_ours, f_hf = bench_hf_encoder.forwards(ours, hf, *bench_hf_encoder.inputs(args))
        outs[dtype] = f_ours(), f_hf()
    for dtype, want in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        assert outs[dtype][0].dtype == outs[dtype][1].dtype == want
    a32, b32 = outs["fp32"]
    a16, b16 = (t.float() for t in outs["bf16"])
    scale = b32.abs().max()
    assert (a32 - b32).abs().max() <= 1e-4 * scale
    assert 0 < (a16 - a32).abs().max() <= 5e-2 * scale  # bf16 really ran, and stays near the fp32 result
    assert (a16 - b16).abs().max() <= 5e-2 * scale
