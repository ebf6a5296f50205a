"""Gymnasium environments in `vjepa wm`: the goal protocol (seeded reset, goal-policy steps, goal frame and
state, same-seed reset), environment-provided goals, dict observations, area resizing, the built-in simulators
registered with Gymnasium, rewards in episodes, the Wilson interval; Reacher-v5 and PushT when `[sim]` is in."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from vjepa_cli.data.episodes import read_episode, read_manifest
from vjepa_cli.envs.collect import run_wm_collect
from vjepa_cli.envs.gym import GymAdapter, resize_frame
from vjepa_cli.envs.tasks import GENERIC, flatten_obs, unwrap_angles
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.wm_stats import wilson_interval


class _Box:
    def __init__(self, low, high):
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.shape = self.low.shape


class _Dict:
    def __init__(self, spaces):
        self.spaces = spaces


class PointGym:
    """A 2-D point with dict observations {"pos", "vel"}; reset puts it at a seed-dependent start."""

    metadata = {"render_fps": 20}
    render_mode = "rgb_array"

    def __init__(self, own_goal: bool = False):
        self.action_space = _Box([-0.1, -0.1], [0.1, 0.1])
        self.observation_space = _Dict({"vel": _Box([-1, -1], [1, 1]), "pos": _Box([0, 0], [1, 1]),
                                        "pixels": _Box(np.zeros((8, 8, 3)), np.ones((8, 8, 3)))})
        self.own_goal, self.p, self.v = own_goal, np.zeros(2), np.zeros(2)

    def _obs(self):
        return {"pos": self.p.astype(np.float32), "vel": self.v.astype(np.float32), "pixels": np.zeros((8, 8, 3))}

    def reset(self, seed=None):
        self.p, self.v = np.random.default_rng(seed).uniform(0.2, 0.8, 2), np.zeros(2)
        info = {"goal_image": np.full((32, 32, 3), 7, np.uint8), "is_success": False} if self.own_goal else {}
        return self._obs(), info

    def step(self, a):
        self.v = np.asarray(a, np.float64)
        self.p = np.clip(self.p + self.v, 0, 1)
        return self._obs(), -float(np.linalg.norm(self.p - 0.5)), False, False, {}

    def render(self):
        img = np.zeros((32, 32, 3), np.uint8)
        i, j = (self.p * 31).astype(int)
        img[31 - j, i] = 255
        return img


def test_flatten_obs_and_area_resize():
    obs = {"b": np.array([[1, 2], [3, 4]]), "a": np.array([5.0]), "pixels": np.zeros((4, 4, 3))}
    assert flatten_obs(obs).tolist() == [5, 1, 2, 3, 4]  # sorted keys, images left out
    frame = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    small = resize_frame(frame, 3)  # 2 x 2 blocks averaged
    ref = frame.astype(np.float64).reshape(3, 2, 3, 2, 3).mean((1, 3))
    assert np.array_equal(small, (ref + 0.5).astype(np.uint8))
    odd = resize_frame(np.full((680, 680, 4), 200, np.uint8), 64)  # PushT's size, RGBA: box filter keeps flat
    assert odd.shape == (64, 64, 3) and (odd == 200).all()
    assert resize_frame(frame, 12).shape == (12, 12, 3)  # enlarging: nearest neighbour
    # uneven bins (680 / 64 = 10.625 rows each): every output pixel is the rounded mean of its own bin
    big = np.random.default_rng(0).integers(0, 256, (680, 680, 3), dtype=np.uint8)
    out, edges = resize_frame(big, 64), [i * 680 // 64 for i in range(65)]
    for r, c in [(0, 0), (5, 63), (63, 17), (31, 32)]:
        cell = big[edges[r]:edges[r + 1], edges[c]:edges[c + 1]].reshape(-1, 3).astype(np.float64)
        assert np.array_equal(out[r, c], (cell.mean(0) + 0.5).astype(np.uint8)), (r, c)


def test_angle_entries_are_recorded_as_cosine_and_sine_continuous_across_a_turn():
    # an angle just below 2 pi and just above 0 is the same pose: as raw numbers 2 pi apart, as (cos, sin) close
    below, above = unwrap_angles(np.array([3.0, 2 * np.pi - 0.01]), (1,)), unwrap_angles(np.array([3.0, 0.01]), (1,))
    assert below.shape == (3,) and below[0] == above[0] == 3.0
    assert np.abs(below - above).max() < 0.021 and np.allclose(below[1:], [np.cos(0.01), -np.sin(0.01)], atol=1e-6)
    # an adapter whose task names the angle entries records them so, and names them
    env = GymAdapter(PointGym(), name="point", task=replace(GENERIC, angles=(1,)), success_radius=0.1)
    env.reset(np.random.default_rng(0))
    vel, pos = env._obs["vel"], env._obs["pos"]
    assert env.spec.state_names == ("obs0", "obs1_cos", "obs1_sin", "obs2", "obs3")
    assert np.allclose(env.state(), [pos[0], np.cos(pos[1]), np.sin(pos[1]), *vel])
    with pytest.raises(VjepaError, match="angle entries"):
        GymAdapter(PointGym(), name="point", task=replace(GENERIC, angles=(4,)))


def test_goal_protocol_seeded_goal_then_same_start_and_replay_oracle():
    env = GymAdapter(PointGym(), "gym:Point", size=16, goal_steps=5, success_radius=0.01)
    assert env.spec.state_names == tuple(f"obs{i}" for i in range(4))  # pos (2) + vel (2), pixels left out
    first = env.reset(np.random.default_rng(3))
    start = env.state().copy()
    goal_img, goal_state = env.goal_image(), env._goal_state.copy()
    assert goal_img.shape == (16, 16, 3) and not np.array_equal(goal_img, first)
    assert env._t == 0 and len(env._goal_actions) == 5  # reset again after the goal rollout
    # the same seed gives the same start, goal and goal actions
    again = GymAdapter(PointGym(), "gym:Point", size=16, goal_steps=5, success_radius=0.01)
    again.reset(np.random.default_rng(3))
    assert np.array_equal(again.state(), start) and np.array_equal(again._goal_state, goal_state)
    # the goal state is where the goal actions lead; replaying them (the oracle) solves the task
    p = start[:2].astype(np.float64)
    for a in env._goal_actions:
        p = np.clip(p + a, 0, 1)
    assert np.allclose(goal_state[:2], p, atol=1e-6)
    assert env.distance() > 0.01 or env.success()
    for _ in range(5):
        env.step(env.oracle_action())
    assert env.distance() < 1e-6 and env.success()
    assert env.oracle_action().tolist() == [0.0, 0.0]  # after the replay: the bounds' midpoint
    env.step(np.array([0.1, 0.1]))
    assert env.reward == pytest.approx(-float(np.linalg.norm(env.state()[:2] - 0.5)))


def test_goal_policies_and_errors():
    walk = GymAdapter(PointGym(), "gym:Point", size=16, goal_steps=4, goal_policy="walk", success_radius=0.1)
    walk.reset(np.random.default_rng(0))
    acts = np.stack(walk._goal_actions)
    assert acts[0].tolist() == [0.0, 0.0] and np.abs(np.diff(acts, axis=0)).max() < 0.1  # small steps
    with pytest.raises(VjepaError, match="unknown goal policy"):
        GymAdapter(PointGym(), goal_policy="expert")
    with pytest.raises(VjepaError, match="no scripted goal policy"):
        GymAdapter(PointGym(), goal_policy="scripted")
    bare = GymAdapter(PointGym(), "gym:Point", size=16, goal_steps=2)  # no known success test, no radius
    bare.reset(np.random.default_rng(0))
    with pytest.raises(VjepaError, match="success_radius"):
        bare.success()
    none = GymAdapter(PointGym(), "gym:Point", size=16)  # collection without goals
    none.reset(np.random.default_rng(0))
    assert none.goal_image() is None and not none.has_oracle


def test_environment_provided_goal_is_used():
    env = GymAdapter(PointGym(own_goal=True), "gym:Point", size=16, goal_steps=5)
    env.reset(np.random.default_rng(0))
    assert (env.goal_image() == 7).all() and env.goal_image().shape == (16, 16, 3)
    assert env._goal_actions == [] and env.success() is False  # the env's own verdict, no goal rollout


def test_builtin_simulators_are_gymnasium_envs():
    gymnasium = pytest.importorskip("gymnasium")
    from vjepa_cli.envs.gym import make_gym_env
    from vjepa_cli.envs.gymnasium_envs import register_gymnasium
    from vjepa_cli.envs.reach2d import Reach2D

    register_gymnasium()
    raw = gymnasium.make("vjepa/Reach2D-v0", render_mode="rgb_array")  # anyone's RL code
    obs, info = raw.reset(seed=1)
    assert raw.observation_space.contains(obs) and info["goal_image"].shape == (64, 64, 3)
    raw.close()
    env = make_gym_env("vjepa/Push2D-v0", size=32)  # the same path as an external environment
    env.reset(np.random.default_rng(0))
    sim = env._inner.sim
    assert env.goal_image().shape == (32, 32, 3) and np.array_equal(env.goal_image(), sim.goal_image())
    assert env.distance() == pytest.approx(sim.distance()) and env.has_oracle
    for _ in range(40):
        env.step(env.oracle_action())
        if env.success():
            break
    assert env.success() == sim.success() and env.distance() == pytest.approx(sim.distance())
    assert isinstance(make_gym_env("vjepa/Reach2D-v0", size=32)._inner.sim, Reach2D)


def test_collect_records_rewards_and_goals(tmp_path, monkeypatch):
    import vjepa_cli.envs.gym as ga

    monkeypatch.setattr(ga, "make_gym_env", lambda name, size, **kw: GymAdapter(PointGym(), f"gym:{name}", size,
                                                                               **{**kw, "success_radius": 0.05}))
    run_wm_collect("gym:Point", 2, tmp_path / "eps", steps=6, size=16, goal_steps=3)
    ep = read_episode(read_manifest(tmp_path / "eps")[0])
    assert ep.rewards.shape == (6,) and ep.goal.shape == (16, 16, 3)
    assert ep.rewards[-1] == pytest.approx(-float(np.linalg.norm(ep.states[-1][:2] - 0.5)), abs=1e-6)
    monkeypatch.undo()  # the built-ins go through make_gym_env too
    run_wm_collect("reach2d", 1, tmp_path / "r", steps=4, size=32)  # built-ins: minus the task distance
    r = read_episode(read_manifest(tmp_path / "r")[0])
    assert r.rewards.shape == (4,) and (r.rewards <= 0).all()


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (3, 10), (47, 50), (1, 1)])
def test_wilson_interval_closed_form(k, n):
    z = 1.959964
    p = k / n
    # the interval's ends are the roots in q of (p - q)^2 = z^2 q (1 - q) / n
    a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
    roots = sorted(((-b - math.sqrt(b * b - 4 * a * c)) / (2 * a), (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(max(roots[0], 0.0), abs=1e-9) and hi == pytest.approx(min(roots[1], 1.0), abs=1e-9)
    assert lo <= p <= hi
    assert wilson_interval(47, 50) == pytest.approx((0.8378, 0.9794), abs=1e-4)  # a textbook value


def test_probe_resets_record_each_first_and_goal_frame_with_its_state(tmp_path, monkeypatch):
    import vjepa_cli.envs.gym as ga
    from vjepa_cli.data.episodes import PROBE_FILE
    from vjepa_cli.envs.collect import PROBE_STREAM
    from vjepa_cli.io.tensors import load_tensors

    monkeypatch.setattr(ga, "make_gym_env", lambda name, size, **kw: GymAdapter(PointGym(), f"gym:{name}", size,
                                                                               **{**kw, "success_radius": 0.05}))
    res = run_wm_collect("gym:Point", 2, tmp_path / "eps", steps=3, size=16, goal_steps=3, probe_resets=4)
    t, meta = load_tensors(tmp_path / "eps" / PROBE_FILE)
    assert res.probe_frames == 8 and t["frames"].shape == (8, 16, 16, 3) and t["states"].shape == (8, 4)
    env = GymAdapter(PointGym(), "gym:Point", 16, goal_steps=3)
    rng = np.random.default_rng([0, PROBE_STREAM])  # the resets' own stream
    for i in range(4):
        first = env.reset(rng)
        assert np.array_equal(t["frames"][2 * i].numpy(), first)
        assert np.allclose(t["states"][2 * i].numpy(), env.state())
        assert np.array_equal(t["frames"][2 * i + 1].numpy(), env.goal_image())
        p = env.state()[:2].astype(np.float64)  # the goal frame's state: where the goal actions lead, at their speed
        for a in env._goal_actions:
            p = np.clip(p + a, 0, 1)
        assert np.allclose(t["states"][2 * i + 1].numpy(), [*p, *env._goal_actions[-1]], atol=1e-6)
    # the episodes are the ones a collection without resets records
    run_wm_collect("gym:Point", 2, tmp_path / "plain", steps=3, size=16, goal_steps=3)
    for a, b in zip(read_manifest(tmp_path / "eps"), read_manifest(tmp_path / "plain"), strict=True):
        assert np.array_equal(read_episode(a).frames, read_episode(b).frames)
    monkeypatch.undo()
    res = run_wm_collect("reach2d", 1, tmp_path / "r", steps=2, size=32, probe_resets=3)  # no goal state: first frames
    assert res.probe_frames == 3
    with pytest.raises(VjepaError, match="probe-resets must be >= 0"):
        run_wm_collect("reach2d", 1, tmp_path / "r2", probe_resets=-1)


def test_training_data_carry_the_probe_resets_encoded_and_cached(tmp_path):
    from dataclasses import replace as dc_replace

    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.episodes import PROBE_FILE
    from vjepa_cli.io.tensors import load_tensors
    from vjepa_cli.models.frozen import encode_frames
    from vjepa_cli.train.wm import recipe_hash
    from vjepa_cli.train.wm_data import prepare_data

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    sets = ["data.env=reach2d", "data.num_episodes=2", "data.steps=4", "data.size=32", "data.num_frames=3",
            "data.probe_resets=5", "encoder.model={arch: vit_tiny, embed_dim: 32, depth: 1, num_heads: 2, "
            "patch_size: 16, tubelet_size: 2, num_frames: 2, img_size: 32}"]
    cfg = load_recipe(WMConfig, recipe, sets)
    data = prepare_data(cfg, tmp_path / "run", "cpu")
    t, _ = load_tensors(tmp_path / "run" / "episodes" / PROBE_FILE)
    assert data.probe_features.shape == (5, 4, 32) and np.array_equal(data.probe_states, t["states"].numpy())
    torch.testing.assert_close(data.probe_features, encode_frames(data.encoder, t["frames"].numpy()))
    assert (tmp_path / "run" / "episodes" / "features" / data.encoder.key / PROBE_FILE).is_file()
    # the resets teach the probe only: the predictor's training (and its resume hash) is the same without them
    assert recipe_hash(cfg) == recipe_hash(dc_replace(cfg, data=dc_replace(cfg.data, probe_resets=0)))
