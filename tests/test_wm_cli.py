"""`vjepa wm` end to end on a tiny setup (collect -> train -> resume -> plan -> eval) and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa_cli.data.media import write_png

TINY = [
    "data.env=reach2d", "data.num_episodes=4", "data.steps=6", "data.size=32", "data.num_frames=3",
    "encoder.model={arch: vit_tiny, embed_dim: 32, depth: 1, num_heads: 2, patch_size: 16, tubelet_size: 2, "
    "num_frames: 2, img_size: 32}",
    "predictor.pred_embed_dim=24", "predictor.depth=1", "predictor.num_heads=2",
    "optim.steps=4", "optim.batch_size=4", "optim.warmup_steps=1", "optim.anneal_steps=1",
    "plan.horizon=2", "plan.samples=8", "plan.topk=2", "plan.iterations=2", "plan.max_steps=3",
    "log_every=1", "checkpoint_every=2",
]


def _sets(extra=()):
    out = []
    for s in [*TINY, *extra]:
        out += ["--set", s]
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    p = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    p.write_text("seed: 0\n")
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory, recipe):
    """A tiny world model trained through the library entry point (shared by the CLI tests)."""
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.train.wm import run_wm_train

    out = tmp_path_factory.mktemp("run")
    cfg = load_recipe(WMConfig, recipe, TINY)
    res = run_wm_train(cfg, out)
    return res


def test_train_outputs_and_determinism(trained, recipe, tmp_path, run_cli):
    out = trained.out_dir
    assert trained.model_path.is_file() and (out / "config.yaml").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4] and all(np.isfinite(x["loss"]) for x in lines)
    assert len(list((out / "episodes").glob("ep_*"))) == 4
    assert len(list((out / "episodes" / "features").glob("*/ep_*.safetensors"))) == 4  # cached once
    eps = f"data.episodes={out / 'episodes'}"
    full = tmp_path / "full"
    r = run_cli("wm", "train", recipe, "-o", full, *_sets(), "--set", eps, "--json")
    assert r.code == 0, r
    assert json.loads(r.out.strip().splitlines()[-1])["steps"] == 4
    from vjepa_cli.io.tensors import load_tensors

    ta, _ = load_tensors(full / "wm.safetensors")
    tb, _ = load_tensors(trained.model_path)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)  # same data, seed and steps -> identical weights
    r = run_cli("wm", "train", recipe, "-o", full, *_sets(), "--set", eps)
    assert r.code == 1 and "already holds a run" in r.err
    r = run_cli("wm", "train", recipe, "-o", full, *_sets(["optim.steps=6"]), "--set", eps, "--resume")
    assert r.code == 1 and "different recipe" in r.err


def test_resume_after_interruption_is_exact(trained, recipe, tmp_path):
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.io.tensors import load_tensors
    from vjepa_cli.train import wm as wt

    cfg = load_recipe(WMConfig, recipe, [*TINY, "data.episodes=" + str(trained.out_dir / "episodes")])
    orig = wt.save_train_state

    def stop_after_two(path, predictor, opt, step, h):
        orig(path, predictor, opt, step, h)
        if step == 2:
            raise KeyboardInterrupt

    wt.save_train_state = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            wt.run_wm_train(cfg, tmp_path / "b")
    finally:
        wt.save_train_state = orig
    assert not (tmp_path / "b" / "wm.safetensors").exists()
    res = wt.run_wm_train(cfg, tmp_path / "b", resume=True)
    assert res.steps == 4
    lines = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4]
    ta, _ = load_tensors(tmp_path / "b" / "wm.safetensors")
    tb, _ = load_tensors(trained.model_path)
    assert all(torch.allclose(ta[k], tb[k], atol=1e-6) for k in ta)  # optimizer moments restored too


def test_plan_cli(trained, tmp_path, run_cli):
    from vjepa_cli.envs.builtin import Reach2D

    env = Reach2D(size=32)
    env.reset(np.random.default_rng(0))
    write_png(tmp_path / "s.png", env.render())
    write_png(tmp_path / "g.png", env.goal_image())
    r = run_cli("wm", "plan", "--model", trained.model_path, "--start", tmp_path / "s.png",
                "--goal", tmp_path / "g.png", "--json", "--set", "plan.horizon=3")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert len(res["actions"]) == 3 and res["action_names"] == ["dx", "dy"]
    assert all(abs(x) <= 0.1 + 1e-6 for a in res["actions"] for x in a)  # within the recorded bounds
    r = run_cli("wm", "plan", "--model", trained.model_path, "--start", tmp_path / "s.png", "--goal", tmp_path / "g.png")
    assert r.code == 0 and "planned actions" in r.out
    write_png(tmp_path / "big.png", np.zeros((40, 40, 3), np.uint8))
    r = run_cli("wm", "plan", "--model", trained.model_path, "--start", tmp_path / "s.png", "--goal", tmp_path / "big.png")
    assert r.code == 1 and "differ in size" in r.err
    r = run_cli("wm", "plan", "--model", trained.model_path, "--start", tmp_path / "nope.png", "--goal", tmp_path / "g.png")
    assert r.code == 1 and "nope.png: file not found" in r.err
    r = run_cli("wm", "plan", "--model", trained.model_path, "--start", tmp_path / "s.png", "--goal",
                tmp_path / "g.png", "--set", "optim.lr=1")
    assert r.code == 1 and "only plan.* keys" in r.err


def test_eval_cli_quick(trained, tmp_path, run_cli):
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "reach2d", "--episodes", "2",
                "-o", tmp_path / "ev", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    names = [m["method"] for m in res["methods"]]
    assert names == ["world model (CEM)", "random", "oracle"]
    wm, rnd, oracle = res["methods"]
    assert wm["plan_ms"] > 0 and rnd["plan_ms"] is None and 0 <= wm["success_rate"] <= 1
    assert oracle["steps"] <= 3 and all(m["steps"] <= 3 for m in res["methods"])
    assert (tmp_path / "ev" / "trajectories.png").is_file() and (tmp_path / "ev" / "eval.json").is_file()
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "push2d", "--episodes", "1")
    assert r.code == 1 and "trained on reach2d" in r.err
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "gym:Pendulum-v1", "--episodes", "1")
    assert r.code == 1 and "built-in environment" in r.err


def test_collect_cli_and_errors(tmp_path, run_cli):
    r = run_cli("wm", "collect", "--env", "push2d", "--episodes", "2", "--steps", "3", "--size", "32",
                "--policy", "noisy", "-o", tmp_path / "eps", "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["episodes"] == 2
    assert (tmp_path / "eps" / "manifest.csv").read_text().splitlines()[0] == "path,num_frames,fps,width,height"
    r = run_cli("wm", "collect", "--env", "push2d", "--episodes", "1", "-o", tmp_path / "eps")
    assert r.code == 1 and "already holds episodes" in r.err
    r = run_cli("wm", "collect", "--env", "maze", "--episodes", "1", "-o", tmp_path / "x")
    assert r.code == 1 and "unknown environment" in r.err
    r = run_cli("wm", "collect", "--env", "gym:Pendulum-v1", "--episodes", "1", "-o", tmp_path / "y")
    assert r.code == 1 and "pip install vjepa-cli[gym]" in r.err
    r = run_cli("wm", "collect", "--policy", "smart", "--episodes", "1", "-o", tmp_path / "z")
    assert r.code == 1 and "unknown policy" in r.err


def test_model_file_errors(tmp_path, run_cli, recipe):
    from vjepa_cli.io.tensors import save_tensors

    save_tensors(tmp_path / "other.safetensors", {"x": torch.zeros(1)}, {"format": "something"})
    write_png(tmp_path / "a.png", np.zeros((32, 32, 3), np.uint8))
    for model, msg in ((tmp_path / "missing.safetensors", "file not found"),
                       (tmp_path / "other.safetensors", "not a world-model file")):
        r = run_cli("wm", "plan", "--model", model, "--start", tmp_path / "a.png", "--goal", tmp_path / "a.png")
        assert r.code == 1 and msg in r.err and "Traceback" not in r.err
    r = run_cli("wm", "train", recipe, "-o", tmp_path / "r", "--resume")
    assert r.code == 1 and "no checkpoint" in r.err
    r = run_cli("wm", "train", recipe, "-o", tmp_path / "r", "--set", "optim.lr=-1")
    assert r.code == 1 and "lr must be > 0" in r.err
    r = run_cli("wm", "train", recipe, "--set", "data.episdoes=x")
    assert r.code == 1 and "did you mean 'data.episodes'" in r.err
    r = run_cli("wm", "train", recipe, "-o", tmp_path / "r2", "--set", f"data.episodes={tmp_path / 'none'}")
    assert r.code == 1 and "no episode manifest" in r.err
    r = run_cli("wm", "--help")
    assert r.code == 0 and all(c in r.out for c in ("collect", "train", "plan", "eval"))
