"""`benchmarks/bench_wm_rollout.py`: the Reacher fingertip from joint angles, and the probed rollout errors of a
tiny world model with a state head (step 0 is the probe on the observed frames; held vs true future states)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_wm_rollout import fingertip, rollout_errors  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _state(q1: float, q2: float) -> torch.Tensor:
    return torch.tensor([math.cos(q1), math.cos(q2), math.sin(q1), math.sin(q2)])


def test_fingertip_is_the_two_link_forward_kinematics():
    assert torch.allclose(fingertip(_state(0.0, 0.0)), torch.tensor([0.21, 0.0]), atol=1e-6)  # arm stretched on x
    assert torch.allclose(fingertip(_state(math.pi / 2, -math.pi / 2)), torch.tensor([0.11, 0.1]), atol=1e-6)
    folded = -0.01 * torch.tensor([math.cos(0.3), math.sin(0.3)])  # 0.1 out along q1, 0.11 back
    assert torch.allclose(fingertip(_state(0.3, math.pi)), folded, atol=1e-6)


def test_rollout_errors_of_a_tiny_world_model(tmp_path):
    from tests.test_wm_cli import TINY
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.episodes import read_episode
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    cfg = load_recipe(WMConfig, recipe, [*TINY, "predictor.use_states=true", "heads.state=true",
                                         "heads.state_dims=[0,1]", "heads.steps=5", "heads.hidden=16"])
    res = run_wm_train(cfg, tmp_path / "run")
    episodes = tmp_path / "run" / "episodes"
    errs = rollout_errors(str(res.model_path), episodes, count=2, horizon=2, context=2, tip=False)
    assert set(errs) == {"held", "true"} and all(len(v) == 3 for v in errs.values())
    windows = 2 * 4  # per episode the last context frame t runs over 1..4 (6 actions, horizon 2)
    assert all(e.numel() == windows for v in errs.values() for e in v)
    assert torch.equal(errs["held"][0], errs["true"][0])  # step 0 reads the observed frame either way
    wm = load_world_model(res.model_path)  # step 0 = the probe's own error on the observed frames
    want = []
    for i in range(2):
        ep = read_episode(sorted(p for p in episodes.iterdir() if p.name.startswith("ep_"))[i])
        probed = wm.state_head.decode(wm.encode(ep.frames)).detach()  # (T+1, 2)
        want.append((probed - torch.as_tensor(ep.states[:, :2], dtype=torch.float32)).norm(dim=-1)[1:5])
    assert torch.allclose(errs["held"][0], torch.cat(want), atol=1e-5)
    assert not torch.equal(errs["held"][2], errs["true"][2])  # a held state is not the recorded one
    assert np.isfinite(torch.cat(errs["held"]).numpy()).all()


def test_rollout_errors_of_a_model_that_predicts_states(tmp_path):
    """`fed`: the probe on predictions made with the model's own states fed forward; `own`: those predicted states,
    read back at the probe's dims (step 0 is the probe on the observed frame in both)."""
    from tests.test_wm_cli import TINY
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.episodes import read_episode
    from vjepa_cli.models.ac_predictor import select_states
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train
    from vjepa_cli.train.wm_heads import windows

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    cfg = load_recipe(WMConfig, recipe, [*TINY, "predictor.use_states=true", "predictor.predict_states=true",
                                         "predictor.state_dims=[1,0]", "heads.state=true", "heads.state_dims=[0]",
                                         "heads.steps=5", "heads.hidden=16"])
    res = run_wm_train(cfg, tmp_path / "run")
    episodes = tmp_path / "run" / "episodes"
    errs = rollout_errors(str(res.model_path), episodes, count=1, horizon=2, context=2, tip=False)
    assert set(errs) == {"fed", "own"} and torch.equal(errs["fed"][0], errs["own"][0])
    wm = load_world_model(res.model_path)
    ep = read_episode(sorted(p for p in episodes.iterdir() if p.name.startswith("ep_"))[0])
    s = torch.as_tensor(ep.states, dtype=torch.float32)
    ctx, act, st = windows(wm.encode(ep.frames), torch.as_tensor(ep.actions, dtype=torch.float32), s, 2, 2, [1, 2, 3, 4])
    with torch.no_grad():
        _, own = wm.predictor.rollout(ctx, act, select_states(wm.predictor.cfg, st[:, :2]), return_states=True)
    want = (own[:, 1, 1] - st[:, 3, 0]).abs()  # entry 0 is the predictor's second; 2 steps after frame t
    assert torch.allclose(errs["own"][2], want, atol=1e-5)
