"""Real simulators through the Gymnasium path (optional extra `[sim]`; skipped cleanly without it): Reacher-v5
rendered headless top-down with goal images, PushT with scripted-push goals, and a tiny collect -> train ->
eval on Reacher-v5 with every planner."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium")


def _reacher():
    pytest.importorskip("mujoco")
    from vjepa_cli.envs.gym import make_gym_env

    return make_gym_env("Reacher-v5", size=32, goal_steps=6)


# a shipped recipe shrunk to seconds: 3 episodes, a 1-block encoder and predictor, 3 steps, MPPI of 8 samples
SHRUNK = ["data.num_episodes=3", "data.size=32", "encoder.model.img_size=32", "encoder.model.embed_dim=32",
          "encoder.model.depth=1", "encoder.model.num_heads=2", "predictor.pred_embed_dim=24", "predictor.depth=1",
          "predictor.num_heads=2", "optim.steps=3", "optim.batch_size=4", "optim.warmup_steps=1",
          "optim.anneal_steps=1", "heads.steps=5", "heads.hidden=16", "plan.max_steps=2", "plan.mppi.samples=8",
          "plan.mppi.topk=2", "plan.mppi.iterations=1"]

def test_reacher_goal_images_fingertip_success_and_fresh_kinematics():
    env = _reacher()
    try:
        first = env.reset(np.random.default_rng(0))
        assert first.shape == (32, 32, 3) and env.goal_image().shape == (32, 32, 3)
        assert not np.array_equal(first, env.goal_image())  # the arm moved during the goal rollout
        assert env.distance() == pytest.approx(np.linalg.norm(env.task_state() - env._goal_state))
        # after a step the fingertip matches the joint angles (MuJoCo's stale kinematics are refreshed)
        env.step(np.array([1.0, -1.0], np.float32))
        q = env._inner.data.qpos[:2]
        tip = np.array([0.1 * np.cos(q[0]) + 0.11 * np.cos(q[0] + q[1]),
                        0.1 * np.sin(q[0]) + 0.11 * np.sin(q[0] + q[1])])
        assert np.allclose(env.task_state(), tip, atol=1e-3)
        env.reset(np.random.default_rng(0))  # replaying the goal actions reaches the goal (deterministic)
        for _ in range(6):
            env.step(env.oracle_action())
        assert env.distance() < 1e-4 and env.success()
        assert env.radius == 0.02  # the task's default radius, metres
    finally:
        env.close()


def test_pusht_scripted_goals_move_the_block_and_the_replay_solves_them():
    pytest.importorskip("gym_pusht")
    from vjepa_cli.envs.gym import make_gym_env

    env = make_gym_env("gym_pusht/PushT-v0", size=32, goal_steps=12, goal_policy="scripted")
    try:
        moved, solved = [], []
        for i in range(3):
            frame = env.reset(np.random.default_rng([0, i]))
            assert frame.shape == (32, 32, 3)  # 680 x 680 rendered, area-resized
            moved.append(env.distance())
            assert not env.success() or env.distance() < 20
            for _ in range(12):
                env.step(env.oracle_action())
            solved.append(env.success())
        assert max(moved) > 20 and sum(solved) >= 2  # goals differ from the start; the replay reaches them
        state, block = env.state(), env.task_state()  # agent (x, y), block (x, y, cos, sin); the block's pose
        assert state.shape == (6,) and env.spec.state_names[4:] == ("obs4_cos", "obs4_sin")
        assert np.allclose(state[2:4], block[:2]) and np.allclose(state[4:], [np.cos(block[2]), np.sin(block[2])],
                                                                     atol=1e-5)
    finally:
        env.close()


def test_relative_pusht_offsets_the_agent_target_holds_it_and_replays_its_goals():
    pytest.importorskip("gym_pusht")
    import gymnasium

    from vjepa_cli.envs.gym import make_gym_env
    from vjepa_cli.envs.pusht_relative import ENV_ID

    rel = make_gym_env(ENV_ID, size=32, goal_steps=12, goal_policy="scripted")
    absolute = make_gym_env("gym_pusht/PushT-v0", size=32)
    try:
        assert rel.spec.action_low == (-100.0, -100.0) and rel.spec.action_high == (100.0, 100.0)
        wrapper = rel.env
        while not hasattr(wrapper, "agent_position"):  # under gymnasium's own wrappers
            wrapper = wrapper.env
        rel.reset(np.random.default_rng([0, 0]))
        agent = wrapper.agent_position()
        assert np.allclose(wrapper.action(np.array([30.0, -250.0])), np.clip(agent + [30.0, -100.0], 0, 512))
        for i in range(3):
            rel.reset(np.random.default_rng([0, i]))
            assert all(np.abs(a).max() <= 100 for a in rel._goal_actions)
            for _ in range(12):
                rel.step(rel.oracle_action())
            assert rel.success()  # replaying the recorded offsets reaches the goal
        moved = {}
        for skip in (1, 5):  # the offset is held for `frame_skip` control steps: 5 cover most of it, 1 a quarter
            env = gymnasium.make(ENV_ID, frame_skip=skip)
            env.reset(seed=3)
            inner = env.unwrapped
            inner.agent.position, inner.agent.velocity = (100.0, 100.0), (0.0, 0.0)
            env.step(np.array([60.0, 40.0], np.float32))
            moved[skip] = float(np.linalg.norm(np.asarray(inner.agent.position) - (100.0, 100.0)))
            env.close()
        assert moved[5] > 0.85 * np.hypot(60, 40) and moved[1] < 0.5 * moved[5]
        red = lambda f: int((f[..., 0].astype(int) - f[..., 1] > 40).sum())  # noqa: E731  gym-pusht's target cross
        assert red(rel.step(np.array([60.0, 60.0], np.float32))) == 0  # left out by default
        absolute.reset(np.random.default_rng(0))
        assert red(absolute.step(np.array([300.0, 300.0], np.float32))) > 0
    finally:
        rel.close()
        absolute.close()


def test_reacher_tiny_train_and_eval_every_planner(tmp_path):
    pytest.importorskip("mujoco")
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.train.wm import run_wm_train

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    sets = ["data.env=gym:Reacher-v5", "data.num_episodes=3", "data.steps=5", "data.size=32", "data.num_frames=3",
            "data.goal_steps=2", "encoder.model={arch: vit_tiny, embed_dim: 32, depth: 1, num_heads: 2, "
            "patch_size: 16, tubelet_size: 2, num_frames: 2, img_size: 32}",
            "predictor.pred_embed_dim=24", "predictor.depth=1", "predictor.num_heads=2", "optim.steps=3",
            "optim.batch_size=4", "optim.warmup_steps=1", "optim.anneal_steps=1", "plan.max_steps=2",
            "plan.cem.samples=8", "plan.cem.topk=2", "plan.cem.iterations=1", "plan.mppi.samples=8",
            "plan.mppi.topk=2", "plan.mppi.iterations=1", "plan.gd.samples=2", "plan.gd.iterations=2"]
    res = run_wm_train(load_recipe(WMConfig, recipe, sets), tmp_path / "run")
    ev = run_wm_eval(res.model_path, "gym:Reacher-v5", episodes=2, methods=["cem", "mppi", "gd"],
                     out_dir=tmp_path / "ev", device="cpu")
    names = [r.method for r in ev.rows]
    assert names == ["world model (CEM)", "world model (MPPI)", "world model (GD)", "random", "oracle"]
    oracle = ev.rows[-1]
    assert oracle.success_rate == 1.0 and oracle.success_low > 0  # the replayed goal actions
    assert all(r.plan_ms > 0 for r in ev.rows[:3]) and all(r.steps <= 2 for r in ev.rows)
    assert all(0 <= r.success_low <= r.success_rate <= r.success_high <= 1 for r in ev.rows)


def test_the_reacher_recipe_plans_on_its_predicted_states(tmp_path):
    """`wm/reacher` as shipped (a predictor that predicts the arm's state, a state probe, `plan.state_from:
    predictor`), shrunk: trains, records the states' statistics, and plans with every planner on its own states."""
    pytest.importorskip("mujoco")
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    sets = SHRUNK + ["data.steps=8", "plan.cem.samples=8", "plan.cem.topk=2", "plan.cem.iterations=1",
                     "plan.gd.samples=2", "plan.gd.iterations=2"]
    cfg = load_recipe(WMConfig, "wm/reacher", sets)
    assert cfg.predictor.predict_states and cfg.plan.state_from == "predictor" and cfg.plan.method == "mppi"
    res = run_wm_train(cfg, tmp_path / "run")
    wm = load_world_model(res.model_path)
    pcfg = wm.predictor.cfg
    assert pcfg.predict_states and pcfg.state_dim == 10 and len(pcfg.state_std) == 10 and min(pcfg.state_std) > 0
    assert wm.plan.state_from == "predictor" and wm.state_head.cfg.dims == (0, 1, 2, 3)
    ev = run_wm_eval(res.model_path, "gym:Reacher-v5", episodes=1, methods=["mppi", "cem", "gd"],
                     out_dir=tmp_path / "ev", device="cpu", baselines=False)
    assert [r.method for r in ev.rows] == ["world model (MPPI)", "world model (CEM)", "world model (GD)"]
    assert all(r.plan_ms > 0 and r.steps <= 2 for r in ev.rows)


def test_the_pusht_recipe_learns_and_plans_on_agent_and_block_states(tmp_path):
    """`wm/pusht-relative` as shipped (noisy pushes, predicted agent and block states with a squared error, a
    probe of all six entries, MPPI on the predicted states), shrunk: trains on the 6-entry states with the
    block angle as cos/sin, and plans."""
    pytest.importorskip("gym_pusht")
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.episodes import PROBE_FILE
    from vjepa_cli.envs.pusht_relative import ENV_ID
    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.io.tensors import load_tensors
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    assert load_recipe(WMConfig, "wm/pusht-relative", []).data.probe_resets == 10000  # as shipped
    sets = SHRUNK + ["data.steps=5", "heads.batch_size=8", "data.probe_resets=4", "heads.reader_steps=3"]
    cfg = load_recipe(WMConfig, "wm/pusht-relative", sets)
    assert cfg.data.policy == "noisy" and cfg.loss.state_loss == "l2" and cfg.plan.state_from == "predictor"
    res = run_wm_train(cfg, tmp_path / "run")
    probe, _ = load_tensors(tmp_path / "run" / "episodes" / PROBE_FILE)  # each reset's first and goal frame
    assert probe["frames"].shape == (8, 32, 32, 3) and probe["states"].shape == (8, 6)
    wm = load_world_model(res.model_path)
    pcfg = wm.predictor.cfg
    assert pcfg.predict_states and pcfg.state_dim == 6 and min(pcfg.state_std) > 0
    assert wm.state_head.cfg.dims == (0, 1, 2, 3, 4, 5)
    assert wm.goal_reader.cfg.dims == (0, 1, 2, 3, 4, 5) and wm.plan.goal_state_from == "reader"  # reads the goal
    ev = run_wm_eval(res.model_path, f"gym:{ENV_ID}", episodes=1, methods=["mppi"], out_dir=tmp_path / "ev",
                     device="cpu")
    assert [r.method for r in ev.rows] == ["world model (MPPI)", "random", "oracle"]
    assert ev.rows[0].plan_ms > 0 and all(r.steps <= 2 for r in ev.rows)


def test_noisy_collection_replays_goal_actions_on_a_gym_env_without_expert(tmp_path):
    """`data.policy: noisy` on an environment with no scripted expert (Reacher-v5) follows the recipe's goal
    actions with noise: wm train's own collection passes data.goal_steps / goal_policy on (it used to fail)."""
    pytest.importorskip("mujoco")
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.episodes import read_episode, read_manifest
    from vjepa_cli.train.wm_data import prepare_data

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    sets = ["data.env=gym:Reacher-v5", "data.num_episodes=2", "data.steps=3", "data.size=32", "data.num_frames=3",
            "data.policy=noisy", "data.goal_steps=3", "encoder.model={arch: vit_tiny, embed_dim: 32, depth: 1, "
            "num_heads: 2, patch_size: 16, tubelet_size: 2, num_frames: 2, img_size: 32}"]
    data = prepare_data(load_recipe(WMConfig, recipe, sets), tmp_path / "run", "cpu")
    dirs = read_manifest(tmp_path / "run" / "episodes")
    assert len(dirs) == 2 and len(data.actions) == 2 and data.actions[0].shape == (3, 2)
    assert all(read_episode(d, frames=False).info["policy"] == "noisy" for d in dirs)
