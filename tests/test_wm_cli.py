"""`vjepa wm` end to end on a tiny setup (collect -> train -> resume -> plan -> eval) and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa_cli.data.media import write_png
from vjepa_cli.envs.reach2d import Reach2D

TINY = [
    "data.env=reach2d", "data.num_episodes=4", "data.steps=6", "data.size=32", "data.num_frames=3",
    "encoder.model={arch: vit_tiny, embed_dim: 32, depth: 1, num_heads: 2, patch_size: 16, tubelet_size: 2, "
    "num_frames: 2, img_size: 32}",
    "predictor.pred_embed_dim=24", "predictor.depth=1", "predictor.num_heads=2",
    "optim.steps=4", "optim.batch_size=4", "optim.warmup_steps=1", "optim.anneal_steps=1",
    "plan.cem.horizon=2", "plan.cem.samples=8", "plan.cem.topk=2", "plan.cem.iterations=2", "plan.max_steps=3",
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


def test_dtype_options_change_the_arithmetic(trained, recipe, tmp_path, run_cli):
    """`wm train --dtype bf16` trains under bf16 autocast (recorded in config.yaml; the weights differ from the
    fp32 run's, which the same data and seed reproduce exactly); `--dtype fp32` is that fp32 run; `wm plan --dtype
    bf16` encodes and plans under autocast (features close to, but not equal to, fp32's)."""
    from vjepa_cli.io.tensors import load_tensors

    eps = f"data.episodes={trained.out_dir / 'episodes'}"
    tb, _ = load_tensors(trained.model_path)
    for dtype, same in (("fp32", True), ("bf16", False)):
        r = run_cli("wm", "train", recipe, "-o", tmp_path / dtype, *_sets(), "--set", eps, "--dtype", dtype)
        assert r.code == 0, r
        assert f"mixed_precision: {dtype}" in (tmp_path / dtype / "config.yaml").read_text()
        ta, _ = load_tensors(tmp_path / dtype / "wm.safetensors")
        assert all(torch.equal(ta[k], tb[k]) for k in ta) == same
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(0))
    write_png(tmp_path / "s.png", env.render())
    write_png(tmp_path / "g.png", env.goal_image())
    energies = {}
    for dtype in ("fp32", "bf16"):
        r = run_cli("wm", "plan", "--model", trained.model_path, "--start", tmp_path / "s.png",
                    "--goal", tmp_path / "g.png", "--json", "--dtype", dtype)
        assert r.code == 0, r
        energies[dtype] = json.loads(r.out)["start_energy"]
    assert energies["bf16"] != energies["fp32"]
    assert energies["bf16"] == pytest.approx(energies["fp32"], rel=0.05)
    r = run_cli("wm", "eval", "--model", trained.model_path, "--episodes", "1", "--dtype", "fp64")
    assert r.code == 2 and "fp64" in r.err


def _as_written_before_the_trainer(path):
    """Rewrite a checkpoint as `vjepa wm train` wrote them before the Trainer: predictor and optimizer tensors,
    metadata kind, step, config_hash and `param_groups` (no RNG, scaler or run log)."""
    from vjepa_cli.io.tensors import load_tensors, save_tensors

    tensors, meta = load_tensors(path)
    old = {k: meta[k] for k in ("format", "format_version", "kind", "step", "config_hash")}
    save_tensors(path, {k: v for k, v in tensors.items() if not k.startswith("rng.")},
                 {**old, "param_groups": meta["optimizer_groups"]})


@pytest.mark.parametrize("written_by", ["trainer", "before"])
def test_resume_after_interruption_is_exact(trained, recipe, tmp_path, written_by):
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.io.tensors import load_tensors
    from vjepa_cli.train import wm as wt

    cfg = load_recipe(WMConfig, recipe, [*TINY, "data.episodes=" + str(trained.out_dir / "episodes")])

    def crash_in_step_three(i, info):  # after the step-2 checkpoint; step 3's metrics are already written
        if info.get("step") == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wt.run_wm_train(cfg, tmp_path / "b", on_step=crash_in_step_three)
    assert not (tmp_path / "b" / "wm.safetensors").exists()
    if written_by == "before":
        _as_written_before_the_trainer(tmp_path / "b" / "checkpoint.safetensors")
    res = wt.run_wm_train(cfg, tmp_path / "b", resume=True)
    assert res.steps == 4
    lines = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4]
    ta, _ = load_tensors(tmp_path / "b" / "wm.safetensors")
    tb, _ = load_tensors(trained.model_path)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)  # optimizer moments restored too


def test_ctrl_c_finishes_the_step_and_checkpoints(trained, recipe, tmp_path):
    import os
    import signal

    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.io.checkpoint import load_checkpoint
    from vjepa_cli.train.wm import run_wm_train

    cfg = load_recipe(WMConfig, recipe, [*TINY, "data.episodes=" + str(trained.out_dir / "episodes")])

    def ctrl_c(i, info):
        if info.get("step") == 3:
            os.kill(os.getpid(), signal.SIGINT)

    res = run_wm_train(cfg, tmp_path / "c", on_step=ctrl_c)
    assert res.interrupted and res.steps == 3 and res.model_path is None
    assert load_checkpoint(tmp_path / "c" / "checkpoint.safetensors")[1]["step"] == 3
    res = run_wm_train(cfg, tmp_path / "c", resume=True)
    assert not res.interrupted and res.steps == 4 and res.model_path.is_file()


def test_a_run_that_fails_at_start_leaves_the_folder_as_it_was(recipe, tmp_path, run_cli):
    """A missing encoder file fails after the episodes were collected into the run folder: a folder the run
    made goes entirely, one that was there is left exactly as it was."""
    from tests._train_helpers import folder_snapshot

    bad = ["encoder.path=" + str(tmp_path / "missing.safetensors"), "data.num_episodes=2"]
    r = run_cli("wm", "train", recipe, "-o", tmp_path / "fresh", *_sets(bad))
    assert r.code == 1 and "file not found" in r.err and not (tmp_path / "fresh").exists()
    old = tmp_path / "old"
    (old / "notes").mkdir(parents=True)
    (old / "notes" / "plan.txt").write_text("mine\n")
    before = folder_snapshot(old)
    r = run_cli("wm", "train", recipe, "-o", old, *_sets(bad))
    assert r.code == 1 and "file not found" in r.err and folder_snapshot(old) == before


def test_a_full_disk_at_a_checkpoint_keeps_the_last(trained, recipe, tmp_path, monkeypatch):
    from tests._train_helpers import fill_disk_at
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.errors import VjepaError
    from vjepa_cli.io.checkpoint import load_checkpoint
    from vjepa_cli.train.wm import run_wm_train

    cfg = load_recipe(WMConfig, recipe, [*TINY, "data.episodes=" + str(trained.out_dir / "episodes")])
    fill_disk_at(2, monkeypatch)  # the step-4 checkpoint (checkpoint_every 2)
    with pytest.raises(VjepaError, match="no space left .*checkpoint.safetensors is intact") as e:
        run_wm_train(cfg, tmp_path / "w")
    assert "free space" in str(e.value)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["checkpoint.safetensors", "config.yaml",
                                                                   "metrics.jsonl"]  # no partial file
    assert load_checkpoint(tmp_path / "w" / "checkpoint.safetensors")[1]["step"] == 2


def test_plan_cli(trained, tmp_path, run_cli):
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


def _as_flat_file(src, dst):
    """A copy of a world-model file whose plan settings use the flat spelling that earlier releases wrote."""
    from vjepa_cli.io.tensors import load_tensors, meta_json, save_tensors

    tensors, meta = load_tensors(src)
    plan = meta_json(meta, "plan")
    cem = plan.pop("cem")
    flat = {**{k: cem[k] for k in ("horizon", "samples", "topk", "iterations", "momentum_mean", "momentum_std",
                                   "energy")}, **plan}
    wm_config = meta_json(meta, "wm_config")
    wm_config["plan"] = flat
    save_tensors(dst, tensors, {**{k: meta_json(meta, k) for k in meta}, "plan": flat, "wm_config": wm_config})
    return dst


def test_model_file_with_flat_plan_settings_plans_identically(trained, tmp_path):
    from vjepa_cli.eval.wm import run_wm_eval, run_wm_plan
    from vjepa_cli.models.world_model import load_world_model

    old = _as_flat_file(trained.model_path, tmp_path / "old.safetensors")
    assert "cem" not in load_world_model(old).meta["plan"]
    assert load_world_model(old).plan == load_world_model(trained.model_path).plan
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(1))
    write_png(tmp_path / "s.png", env.render())
    write_png(tmp_path / "g.png", env.goal_image())
    for sets in ((), ("plan.samples=16",), ("plan.cem.samples=16",)):  # either spelling of an override
        a = run_wm_plan(old, tmp_path / "s.png", tmp_path / "g.png", sets=sets, seed=3, device="cpu")
        b = run_wm_plan(trained.model_path, tmp_path / "s.png", tmp_path / "g.png", sets=sets, seed=3, device="cpu")
        assert a.actions == b.actions and a.energy == b.energy
    ea = run_wm_eval(old, "reach2d", 2, baselines=False, out_dir=tmp_path / "ea", device="cpu")
    eb = run_wm_eval(trained.model_path, "reach2d", 2, baselines=False, out_dir=tmp_path / "eb", device="cpu")
    assert [(r.success_rate, r.final_distance, r.steps) for r in ea.rows] == \
        [(r.success_rate, r.final_distance, r.steps) for r in eb.rows]


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
    assert (tmp_path / "ev" / "trajectories.png").is_file()
    assert json.loads((tmp_path / "ev" / "eval.json").read_text()) == res  # the file is what --json printed
    assert list(res) == ["env", "episodes", "max_steps", "device", "png", "methods"]
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "gym:vjepa/Reach2D-v0", "--episodes", "2",
                "-o", tmp_path / "ev-gym", "--json")  # the short name's Gymnasium id: the same episodes
    assert r.code == 0, r
    key = ("method", "success_rate", "final_distance", "steps")
    assert [[m[k] for k in key] for m in json.loads(r.out)["methods"]] == [[m[k] for k in key] for m in res["methods"]]
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "push2d", "--episodes", "1")
    assert r.code == 1 and "trained on reach2d" in r.err
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "gym:Pendulum-v1", "--episodes", "1")
    assert r.code == 1 and "trained on reach2d" in r.err
    r = run_cli("wm", "eval", "--model", trained.model_path, "--env", "maze", "--episodes", "1")
    assert r.code == 1 and "unknown environment" in r.err
    r = run_cli("wm", "eval", "--model", trained.model_path, "--episodes", "2", "--methods", "mppi,gd",
                "--no-baselines", "--goal-steps", "3", "--goal-policy", "walk", "-o", tmp_path / "ev2", "--json")
    assert r.code == 0, r
    rows = json.loads(r.out)["methods"]
    assert [m["method"] for m in rows] == ["world model (MPPI)", "world model (GD)"]
    assert all(m["success_low"] <= m["success_rate"] <= m["success_high"] and m["episodes"] == 2 for m in rows)
    r = run_cli("wm", "eval", "--model", trained.model_path, "--episodes", "1", "--methods", "rrt")
    assert r.code == 1 and "unknown planning method 'rrt'" in r.err
    r = run_cli("wm", "eval", "--model", trained.model_path, "--episodes", "1", "--methods", "cem+prior")
    assert r.code == 1 and "no policy head" in r.err


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
    r = run_cli("wm", "collect", "--env", "gym:NoSuchEnv-v9", "--episodes", "1", "-o", tmp_path / "y")
    assert r.code == 1 and "cannot make Gymnasium environment 'NoSuchEnv-v9'" in r.err
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


def test_resume_when_the_recipe_hash_is_all_digits(trained, recipe, tmp_path, monkeypatch):
    """The recipe hash is hex; about 1 recipe in 300 hashes to digits only, which must still resume."""
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.train import wm as wt

    monkeypatch.setattr(wt, "recipe_hash", lambda cfg: "157198882789")
    cfg = load_recipe(WMConfig, recipe, [*TINY, "data.episodes=" + str(trained.out_dir / "episodes")])

    def crash_in_step_three(i, info):  # after the step-2 checkpoint
        if info.get("step") == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        wt.run_wm_train(cfg, tmp_path / "d", on_step=crash_in_step_three)
    assert wt.run_wm_train(cfg, tmp_path / "d", resume=True).steps == 4
