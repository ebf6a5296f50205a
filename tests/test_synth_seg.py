"""`synth-seg`: mIoU against closed-form cases, token labels against a loop, and the probe end to end on features
that carry the answer (well above chance) and on noise (no better than them)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vjepa_cli.config.seg import SegProbeConfig
from vjepa_cli.data import synth_scenes as sc
from vjepa_cli.eval.probe.tasks.registry import DENSE_TASKS
from vjepa_cli.eval.probe.tasks.synth_seg import (
    COVER,
    confusion,
    make_clips,
    miou,
    run_seg_probe,
    token_labels,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_miou_closed_form():
    t = torch.tensor([0, 0, 0, 1, 1])
    p = torch.tensor([0, 0, 1, 1, 0])
    # class 0: TP 2, FP 1 (index 4), FN 1 (index 2) -> 2/4; class 1: TP 1, FP 1, FN 1 -> 1/3
    score, iou = miou(p, t, 2)
    assert iou == pytest.approx([0.5, 1 / 3]) and score == pytest.approx((0.5 + 1 / 3) / 2)
    assert miou(t, t, 2)[0] == 1.0
    assert confusion(p, t, 2).tolist() == [[2, 1], [1, 1]]
    # a class neither predicted nor present is left out of the mean
    score, iou = miou(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    assert score == 1.0 and math.isnan(iou[2])
    # all background: IoU_bg = share of background, IoU_shape = 0
    score, _ = miou(torch.zeros(10, dtype=torch.long), torch.tensor([0] * 8 + [1] * 2), 2)
    assert score == pytest.approx(0.8 / 2)


def test_token_labels_match_a_loop():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 32, 32)).astype(np.float32) ** 3
    got = token_labels(masks, 3, tubelet=2, patch=16)
    want = []
    for t in range(2):
        for h in range(2):
            for w in range(2):
                cover = masks[2 * t:2 * t + 2, 16 * h:16 * h + 16, 16 * w:16 * w + 16].mean()
                want.append(3 if cover >= COVER else 0)
    assert got.tolist() == want


def test_rendered_frames_are_the_synth_shapes_videos():
    rng_a, rng_b = np.random.default_rng([0, 1, 0, 5]), np.random.default_rng([0, 1, 0, 5])
    frames, masks = sc.render_shapes_with_masks(rng_a, 5, 4, 32)
    assert np.array_equal(frames, sc.render_shapes(rng_b, 5, 4, 32)) and masks.shape == (4, 32, 32)
    clips, labels = make_clips(SegProbeConfig(frames=4, size=32, classes="shape"), 3, 0, 2, 16)
    assert clips.shape == (3, 3, 4, 32, 32) and labels.shape == (3, 8)
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3}


class _Stub(nn.Module):
    """An 'encoder' whose per-token features are the token's mean colour saturation (the shapes are saturated, the
    background grey) plus noise; `informative=False` gives noise only."""

    tubelet_size, patch_size = 2, 16

    def __init__(self, informative: bool):
        super().__init__()
        self.informative = informative

    def forward(self, x):
        b, _, t, h, w = x.shape
        sat = (x.max(1).values - x.min(1).values)  # (B, T, H, W)
        tok = sat.reshape(b, t // 2, 2, h // 16, 16, w // 16, 16).mean((2, 4, 6)).reshape(b, -1, 1)  # (B, N, 1)
        noise = torch.randn(b, tok.shape[1], 3, generator=torch.Generator().manual_seed(b * 7 + t))
        return torch.cat([tok if self.informative else torch.zeros_like(tok), noise], dim=-1)  # (B, N, 4)


def test_probe_beats_chance_on_an_informative_feature_and_not_on_noise():
    cfg = SegProbeConfig(train=48, val=24, frames=4, steps=150, batch_size=16)
    good = DENSE_TASKS["synth-seg"](_Stub(True), cfg)
    noise = run_seg_probe(_Stub(False), cfg)
    assert 0.0 < good.object_share < 0.3 and good.classes == ["background", "shape"]
    assert good.miou > good.chance_miou + 0.2, good
    assert noise.miou < good.miou - 0.2, (noise, good)


def test_probe_cli_runs_the_dense_task(run_cli, tmp_path):
    """`vjepa probe --task synth-seg`: the per-token probe from the command line, its keys via --set."""
    import json

    from tests._probe_helpers import tiny_model

    model = tiny_model(tmp_path / "m.safetensors")
    sets = [a for s in ("train=8", "val=4", "frames=4", "size=32", "steps=20") for a in ("--set", s)]
    r = run_cli("probe", "--task", "synth-seg", "-m", model, "--json", "-o", tmp_path / "seg", *sets)
    assert r.code == 0, r
    rec = json.loads(r.out)
    assert 0.0 <= rec["miou"] <= 1.0 and rec["classes"][0] == "background"
    assert json.loads((tmp_path / "seg" / "metrics.json").read_text())["miou"] == rec["miou"]
    bad = run_cli("probe", "--task", "synth-seg", "-m", model, "--set", "trian=8")
    assert bad.code == 1 and "trian" in bad.err
