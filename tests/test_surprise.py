"""Surprise and the intuitive-physics metrics: AUROC/AUPRC against brute force, surprise against a
direct computation, CSV/PNG/JSON output, and an end-to-end synthetic check where the answer is known."""

from __future__ import annotations

import csv
import json
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _eval_helpers import save_tiny_model, tiny_config, write_index_video

from vjepa_cli.config.extract import SurpriseConfig, WindowConfig
from vjepa_cli.infer.metrics import auprc, auroc, pairwise_accuracy, peak_ratio, physics_metrics


def _auroc_brute(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def _auprc_brute(scores, labels):
    """Walk the thresholds from high to low (predict positive when score >= t), counting tp/fp directly, from
    the point (recall 0, precision 1) until recall first reaches 1; sum the trapezoids (sklearn's
    precision_recall_curve + auc, as the published evaluation computes AUPRC)."""
    curve = [(0.0, 1.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        tp, fp = int((pred & (labels == 1)).sum()), int((pred & (labels == 0)).sum())
        curve.append((tp / labels.sum(), tp / (tp + fp)))
        if tp == labels.sum():
            break
    return sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in zip(curve, curve[1:], strict=False))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_auprc_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    scores = rng.integers(0, 6, n).astype(float) + (rng.normal(size=n) if seed % 2 else 0)  # ties when even
    labels = np.r_[1, 0, rng.integers(0, 2, n - 2)]
    assert auroc(scores, labels) == pytest.approx(_auroc_brute(scores, labels), abs=1e-12)
    assert auprc(scores, labels) == pytest.approx(_auprc_brute(scores, labels), abs=1e-12)


def test_physics_metrics_conventions():
    poss = [np.array([0.1, 0.2, 0.1]), np.array([0.3, 0.2, 0.2]), np.array([0.1, 0.1, 0.1])]
    imp = [np.array([0.1, 0.9, 0.1]), np.array([0.3, 0.1, 0.1]), np.array([0.1, 0.1, 0.1])]
    m = physics_metrics(poss, imp)
    assert m["pairwise_acc_max"] == pytest.approx(1 / 3)  # only pair 0 (a tie counts as wrong)
    assert m["pairwise_acc_mean"] == pytest.approx(1 / 3)
    assert pairwise_accuracy([1.0, 2.0], [2.0, 1.0]) == 0.5
    sep = physics_metrics([[0.1], [0.2]], [[0.5], [0.6]])  # every impossible video more surprising
    assert sep["auroc_max"] == sep["auprc_mean"] == sep["pairwise_acc_mean"] == 1.0
    rev = physics_metrics([[0.5], [0.6]], [[0.1], [0.2]])
    assert rev["auroc_mean"] == 0.0 and rev["pairwise_acc_max"] == 0.0


def test_peak_score_ignores_the_scene_level():
    """A scene that is hard to predict throughout (high max) but has no spike ranks below an easy scene with a
    spike: the max gets the order wrong, max / mean gets it right. Closed-form values."""
    hard_flat, easy_spike = [0.30, 0.32, 0.31, 0.33], [0.05, 0.05, 0.20, 0.05]  # max 0.33 vs 0.20
    hard_spike, easy_flat = [0.30, 0.30, 0.60, 0.30], [0.05, 0.06, 0.05, 0.05]
    m = physics_metrics([hard_flat, easy_flat], [easy_spike, hard_spike])
    assert m["pairwise_acc_max"] == 0.5 and m["auroc_max"] == 0.75  # easy_spike (0.20) < hard_flat (0.33)
    assert peak_ratio(easy_spike) == pytest.approx(0.20 / 0.0875)
    assert peak_ratio(hard_flat) == pytest.approx(0.33 / 0.315)
    assert m["pairwise_acc_peak"] == 1.0 and m["auroc_peak"] == 1.0
    assert peak_ratio([0.0, 0.0]) == 0.0 and peak_ratio([0.2, 0.2]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("surprise")
    write_index_video(d / "a.mp4", 24)
    model = save_tiny_model(d / "model.safetensors", tiny_config(num_frames=8))
    rope = save_tiny_model(d / "rope.safetensors", tiny_config(num_frames=8, pos_embed="rope"))
    return d, model, rope


def test_surprise_matches_direct_computation(media):
    import vjepa_cli
    from vjepa_cli.infer.predict import predict_future

    _, _, model_path = media  # RoPE: a clip of the context frames alone has the same token positions
    m = vjepa_cli.load_model(model_path)
    x = torch.randn(3, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    (pairs, grid) = predict_future(m.encoder, m.predictor, x, [2, 6])
    assert grid == (4, 2, 2)
    with torch.inference_mode():
        full = F.layer_norm(m.encoder(x), (48,)).view(3, 4, 4, 48)  # (B, T', H'W', D), time-major token ids
        for (pred, tgt), c in zip(pairs, (1, 3), strict=True):
            ctx = m.encoder(x[:, :, : 2 * c])  # a clip of only the context frames: the same tokens, ids 0..Kc-1
            assert tgt.shape == pred.shape == (3, (4 - c) * 4, 48)
            torch.testing.assert_close(tgt, full[:, c:].reshape(3, -1, 48))
            ids = torch.arange(c * 4).expand(3, -1)
            want = m.predictor(ctx, ids, torch.arange(c * 4, 16).expand(3, -1), grid=(4, 2, 2))
            torch.testing.assert_close(pred, want, atol=1e-5, rtol=1e-5)
    # another encoder for the context (the online one, as the published protocol): targets unchanged
    import copy

    online = copy.deepcopy(m.encoder)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(0.05)
    ((pred2, tgt2),), _ = predict_future(m.encoder, m.predictor, x, [2], context_encoder=online)
    with torch.inference_mode():
        ids, tids = torch.arange(4).expand(3, -1), torch.arange(4, 16).expand(3, -1)
        want = m.predictor(online(x[:, :, :2]), ids, tids, grid=(4, 2, 2))
    torch.testing.assert_close(pred2, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tgt2, pairs[0][1])


def test_surprise_cli_csv_png_json(media, run_cli, tmp_path):
    from vjepa_cli.data.media import read_image

    d, model, _ = media
    r = run_cli("surprise", d / "a.mp4", "-o", tmp_path / "s.csv", "--model", model, "--frames", "8",
                "--frame-step", "1", "--context", "2,4", "--json")
    assert r.code == 0, r
    row = json.loads(r.out)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == row["windows"] == (24 - 8) // 2 + 1  # stride 2 (protocol default)
    assert list(rows[0]) == ["window", "start_s", "end_s", "surprise", "context_2", "context_4"]
    assert float(rows[1]["start_s"]) == pytest.approx(0.2) and float(rows[1]["end_s"]) == pytest.approx(1.0)
    combined = [min(float(x["context_2"]), float(x["context_4"])) for x in rows]
    np.testing.assert_allclose([float(x["surprise"]) for x in rows], combined, atol=2e-6)
    assert row["max"] == pytest.approx(max(combined), abs=2e-6)
    assert read_image(tmp_path / "s.png").shape[2] == 3
    r = run_cli("surprise", d / "a.mp4", "-o", tmp_path, "--model", model, "--frames", "8", "--context", "8")
    assert r.code == 1 and "below the window" in r.err


class _PersistencePredictor(torch.nn.Module):
    """Predicts that every patch keeps the (layer-normed) feature it had at the last context step."""

    def forward(self, ctx, ctx_ids, tgt_ids, mask_index=0, grid=None):
        t, h, w = grid
        hw = h * w
        last = F.layer_norm(ctx[:, -hw:], (ctx.shape[-1],))  # (B, HW, D)
        return last.repeat(1, tgt_ids.shape[1] // hw, 1)


def _ball_video(path, vanish: bool, seed: int):
    from vjepa_cli.data.media import write_video

    rng = np.random.default_rng(seed)
    bg = rng.integers(60, 120, (1, 32, 32, 3)).repeat(24, 0).astype(np.uint8)
    x0 = int(rng.integers(4, 12))
    for t in range(24):
        if not (vanish and t >= 12):
            bg[t, 12:20, x0 + t // 3: x0 + t // 3 + 8] = 230
    write_video(path, bg, 8, crf=0)


def test_score_pairs_synthetic_known_answer(tmp_path, media):
    """A persistence predictor is surprised when a ball vanishes: pairwise accuracy and AUROC must be 1."""
    import vjepa_cli
    from vjepa_cli.infer.surprise import read_pairs, score_pairs

    _, model_path, _ = media
    m = vjepa_cli.load_model(model_path)
    model = types.SimpleNamespace(encoder=m.encoder, predictor=_PersistencePredictor(), config=m.config, metadata={})
    lines = ["possible,impossible"]
    for i in range(3):
        _ball_video(tmp_path / f"p{i}.mp4", False, i)
        _ball_video(tmp_path / f"i{i}.mp4", True, i)
        lines.append(f"p{i}.mp4,i{i}.mp4")
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    cfg = SurpriseConfig(window=WindowConfig(frames=8, frame_step=1, stride=2, size=32, resize=32), context_frames=(2, 4))
    res = score_pairs(read_pairs(tmp_path / "pairs.csv"), cfg, model=model)
    assert res["pairs"] == 3
    assert res["pairwise_acc_max"] == res["auroc_max"] == 1.0
    assert set(res["context_2"]) == {f"{m}_{r}" for m in ("pairwise_acc", "auroc", "auprc")
                                     for r in ("max", "mean", "peak")}


def test_predict_cli(media, run_cli, tmp_path):
    from vjepa_cli.io.tensors import load_tensors

    d, model, _ = media
    args = ["--frames", "8", "--frame-step", "1", "--context", "4"]
    r = run_cli("predict", d / "a.mp4", "-o", tmp_path / "p.safetensors", "--model", model, *args, "--json")
    assert r.code == 0, r
    t, meta = load_tensors(tmp_path / "p.safetensors")
    w = (24 - 8) // 2 + 1  # 24 frames, windows of 8 every 2
    assert t["predicted"].shape == t["target"].shape == (w, 2 * 4, 48)  # 2 predicted steps x (2 x 2) patches
    assert t["error"].shape == (w, 2) and t["timestamps"].shape == (w, 2)
    assert t["context_ids"].tolist() == list(range(8)) and t["target_ids"].tolist() == list(range(8, 16))
    torch.testing.assert_close(t["error"].mean(1), t["surprise"])
    torch.testing.assert_close((t["predicted"] - t["target"]).abs().mean((1, 2)), t["surprise"])
    assert json.loads(r.out)["windows"] == w and json.loads(meta["context_frames"]) == 4
    enc_only = save_tiny_model(tmp_path / "enc.safetensors", tiny_config(num_frames=8), predictor=False)
    r = run_cli("predict", d / "a.mp4", "-o", tmp_path / "q.safetensors", "--model", enc_only, *args)
    assert r.code == 1 and "no predictor" in r.err and not (tmp_path / "q.safetensors").exists()
    other = save_tiny_model(tmp_path / "other.safetensors", tiny_config(num_frames=8, depth=1))
    r = run_cli("predict", d / "a.mp4", "-o", tmp_path / "q.safetensors", "--model", model, "--context-model", other, *args)
    assert r.code == 1 and "another architecture" in r.err
