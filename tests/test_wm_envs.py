"""Simulators: dynamics, bounds, rendering, goal images, oracle; episode folders round trip; Gym adapter."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa_cli.data.episodes import (
    Episode,
    read_episode,
    read_manifest,
    stride_for,
    window_actions,
    window_indices,
    write_episode,
    write_manifest,
)
from vjepa_cli.data.media import read_image, read_video, write_png, write_video
from vjepa_cli.envs.gym import GymAdapter, make_gym_env
from vjepa_cli.envs.push2d import Push2D
from vjepa_cli.envs.reach2d import Reach2D
from vjepa_cli.envs.registry import ENVS, make_env, register_env
from vjepa_cli.envs.render import AGENT, BLOCK
from vjepa_cli.errors import VjepaError


def test_reach2d_dynamics_clip_and_render():
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(0))
    env.agent = np.array([0.5, 0.5], dtype=np.float32)
    env.step(np.array([0.05, -0.02]))
    assert np.allclose(env.state(), [0.55, 0.48], atol=1e-6)
    env.step(np.array([5.0, 5.0]))  # clipped to max_step 0.1
    assert np.allclose(env.state(), [0.65, 0.58], atol=1e-6)
    env.agent = np.array([0.98, 0.5], dtype=np.float32)
    env.step(np.array([0.1, 0.0]))  # stays inside the arena
    assert env.state()[0] == 1.0
    env.agent = np.array([0.25, 0.75], dtype=np.float32)
    img = env.render()
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    # the agent's disk is drawn at (x, y) = (col, row): pixel (row 24, col 8) is the agent colour
    assert np.abs(img[24, 8] / 255.0 - AGENT).max() < 0.02
    far = img[2, 30] / 255.0  # far corner: lit less than near the agent, but not background-only
    assert np.abs(far - AGENT).max() > 0.3


def test_reach2d_goal_image_and_oracle_succeeds():
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(3))
    assert env.distance() >= 0.3 and not env.success()
    goal = env.goal_image()
    for _ in range(30):
        if env.success():
            break
        a = env.oracle_action()
        assert np.abs(a).max() <= env.max_step + 1e-6
        env.step(a)
    assert env.success()
    env.agent = env.target.copy()
    assert np.array_equal(env.render(), goal)  # the goal image is the frame at the target


def test_push2d_contact_moves_block_and_oracle_pushes():
    env = Push2D(size=32)
    env.reset(np.random.default_rng(0))
    env.block = np.array([0.5, 0.5], dtype=np.float32)
    env.agent = np.array([0.2, 0.5], dtype=np.float32)
    env.step(np.array([0.1, 0.0]))  # no contact yet: 0.3 + radius 0.06 < 0.42 block edge
    assert np.allclose(env.block, [0.5, 0.5])
    env.step(np.array([0.1, 0.0]))  # contact: agent edge at 0.46 pushes the block edge 0.42 -> 0.46
    assert env.block[0] == pytest.approx(0.54, abs=1e-5) and abs(env.block[1] - 0.5) < 1e-6
    assert env.block[0] - env.half - env.agent[0] >= env.radius - 1e-5
    solved = 0
    for s in range(10):
        env.reset(np.random.default_rng(s))
        for _ in range(40):
            if env.success():
                break
            env.step(env.oracle_action())
        solved += env.success()
    assert solved >= 9
    assert env.state().shape == (4,)


def test_make_env_errors():
    with pytest.raises(VjepaError, match="unknown environment") as e:
        make_env("cartpole")
    assert all(name in str(e.value) for name in ENVS) and "gym:<" in str(e.value)  # the hint reads the registry
    import sys

    mp = pytest.MonkeyPatch()
    mp.setitem(sys.modules, "gymnasium", None)  # as without the optional extra
    try:
        with pytest.raises(VjepaError, match="pip install vjepa-cli\\[sim\\]"):
            make_gym_env("Pendulum-v1")
    finally:
        mp.undo()


def test_registry_lists_what_is_registered(monkeypatch):
    from vjepa_cli.envs import registry

    monkeypatch.setattr(registry, "ENVS", dict(ENVS))  # a copy: registrations below vanish after the test
    register_env("dummy", Push2D)
    with pytest.raises(VjepaError, match="registered: reach2d, push2d, dummy; or gym:<Gymnasium id>"):
        make_env("maze")
    assert isinstance(make_env("dummy", size=16), Push2D)
    with pytest.raises(ValueError, match="already registered"):
        register_env("reach2d", Reach2D)
    with pytest.raises(ValueError, match="gym:"):
        register_env("gym:Mine-v0", Reach2D)


@pytest.mark.parametrize("name", list(ENVS))
def test_every_registered_env_steps_and_renders(name):
    env = make_env(name, size=32)
    assert env.spec.name == name and len(env.spec.action_low) == len(env.spec.action_high) == len(env.spec.action_names)
    frame = env.reset(np.random.default_rng(0))
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    goal = env.goal_image()
    assert goal.shape == frame.shape and goal.dtype == np.uint8 and not np.array_equal(goal, frame)
    rng = np.random.default_rng(1)
    for _ in range(3):
        a = env.oracle_action()
        assert np.all(a >= np.asarray(env.spec.action_low) - 1e-6) and np.all(a <= np.asarray(env.spec.action_high) + 1e-6)
        nxt = env.step(rng.uniform(env.spec.action_low, env.spec.action_high))
        assert nxt.shape == frame.shape and np.array_equal(nxt, env.render())
    state = env.state()
    assert state.shape == (len(env.spec.state_names),) and np.isfinite(state).all()
    assert env.distance() >= 0 and isinstance(env.success(), bool)


def test_image_and_video_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 16, 24, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=10, lossless=True)
    assert np.array_equal(read_video(tmp_path / "v.mp4"), frames)  # lossless
    write_png(tmp_path / "a.png", frames[0])
    assert np.array_equal(read_image(tmp_path / "a.png"), frames[0])
    with pytest.raises(VjepaError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(VjepaError, match="cannot decode"):
        read_image(tmp_path / "bad.png")


def test_episode_round_trip_and_windows(tmp_path):
    rng = np.random.default_rng(0)
    T = 7
    ep = Episode(frames=rng.integers(0, 256, (T, 16, 16, 3), dtype=np.uint8),
                 actions=rng.normal(size=(T - 1, 2)).astype(np.float32), states=rng.normal(size=(T, 3)).astype(np.float32),
                 fps=20.0, action_names=("dx", "dy"), state_names=("a", "b", "c"), action_low=(-1.0, -1.0),
                 action_high=(1.0, 1.0), goal=np.zeros((16, 16, 3), np.uint8), info={"env": "toy", "success": True})
    write_episode(tmp_path / "ep_0", ep)
    write_manifest(tmp_path, [{"path": "ep_0", "num_frames": T, "fps": 20.0, "width": 16, "height": 16}])
    (dirs,) = [read_manifest(tmp_path)]
    back = read_episode(dirs[0])
    assert np.array_equal(back.frames, ep.frames) and np.array_equal(back.actions, ep.actions)
    assert np.array_equal(back.states, ep.states) and np.array_equal(back.goal, ep.goal)
    assert back.fps == 20.0 and back.action_names == ("dx", "dy") and back.action_high == (1.0, 1.0)
    assert back.info == {"env": "toy", "success": True}
    # at 10 fps from 20 fps: every 2nd frame, actions in between summed
    stride = stride_for(back.fps, 10)
    idx = window_indices(T, 3, stride, start=1)
    assert stride == 2 and idx.tolist() == [1, 3, 5]
    wa = window_actions(back.actions, idx)
    assert np.allclose(wa, [ep.actions[1] + ep.actions[2], ep.actions[3] + ep.actions[4]])
    with pytest.raises(ValueError):
        window_indices(T, 4, 2, start=1)
    with pytest.raises(ValueError, match="T-1"):
        Episode(frames=ep.frames, actions=ep.actions[:3]).check()
    with pytest.raises(VjepaError, match="no episode manifest"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(VjepaError, match="not an episode folder"):
        read_episode(tmp_path)


class _Box:
    def __init__(self, low, high):
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.shape = self.low.shape


class FakeGymEnv:
    """The slice of the Gymnasium API the adapter uses: a 1-D point that renders as a bright column."""

    metadata = {"render_fps": 30}
    render_mode = "rgb_array"

    def __init__(self):
        self.action_space = _Box([-1.0], [1.0])
        self.observation_space = _Box([-10.0], [10.0])
        self.x, self.seed = 0.0, None

    def reset(self, seed=None):
        self.seed, self.x = seed, 0.0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += float(action[0])
        return np.array([self.x], np.float32), 0.0, False, abs(self.x) > 2.5, {}

    def render(self):
        img = np.zeros((40, 80, 3), np.uint8)
        img[:, int(np.clip(40 + 10 * self.x, 0, 79))] = 255
        return img


def test_gym_adapter_with_fake_env_and_collect(tmp_path, monkeypatch):
    env = GymAdapter(FakeGymEnv(), name="gym:Fake-v0", size=16)
    assert env.spec.action_low == (-1.0,) and env.spec.state_names == ("obs0",) and env.spec.fps == 30
    frame = env.reset(np.random.default_rng(0))
    assert frame.shape == (16, 16, 3)
    env.step(np.array([5.0]))  # clipped to the Box
    assert env.state().tolist() == [1.0]
    with pytest.raises(VjepaError, match="no scripted policy"):
        env.oracle_action()
    bad = FakeGymEnv()
    bad.render_mode = None
    with pytest.raises(VjepaError, match="rgb_array"):
        GymAdapter(bad)
    # `wm collect --env gym:...` goes through the adapter and stops at truncation
    import vjepa_cli.envs.gym as ga
    from vjepa_cli.envs.collect import run_wm_collect

    monkeypatch.setattr(ga, "make_gym_env", lambda name, size, **kw: GymAdapter(FakeGymEnv(), f"gym:{name}", size))
    res = run_wm_collect("gym:Fake-v0", 2, tmp_path / "eps", steps=50, size=16, policy="random")
    ep = read_episode(read_manifest(tmp_path / "eps")[0])
    assert res.episodes == 2 and ep.num_frames < 51 and ep.states.shape == (ep.num_frames, 1)
    assert ep.info["env"] == "gym:Fake-v0" and ep.goal is None



@pytest.mark.parametrize("name", ["reach2d", "push2d"])
def test_short_names_are_the_gymnasium_ids(name):
    """`push2d` and `gym:vjepa/Push2D-v0` are one environment through one path: same episodes per seed."""
    from vjepa_cli.envs.registry import ALIASES, canonical_env

    short, full = make_env(name, size=32), make_env(f"gym:{ALIASES[name]}", size=32)
    assert isinstance(short, GymAdapter) and isinstance(full, GymAdapter)
    assert short.spec.name == name and full.spec.name == f"gym:{ALIASES[name]}"
    assert short.spec.action_names == full.spec.action_names == make_env(name).spec.action_names != ("a0", "a1")
    assert canonical_env(name) == canonical_env(f"gym:{ALIASES[name]}") and canonical_env("gym:X-v0") == "gym:X-v0"
    for seed in range(3):
        frames = [env.reset(np.random.default_rng([7, seed])) for env in (short, full)]
        assert np.array_equal(*frames) and np.array_equal(short.goal_image(), full.goal_image())
        rng = np.random.default_rng(seed)
        for t in range(6):
            a = short.oracle_action() if t % 2 else rng.uniform(short.spec.action_low, short.spec.action_high)
            assert np.array_equal(short.step(a), full.step(a))
            assert np.array_equal(short.state(), full.state()) and short.distance() == full.distance()
        assert np.allclose(short.target, full.target) and short.success() == full.success()


def test_push2d_renders_the_block_as_what_the_image_is_about():
    env = Push2D(size=64)
    env.reset(np.random.default_rng(0))
    start_block = env.block.copy()
    env.agent, env.block = np.array([0.2, 0.2], np.float32), np.array([0.6, 0.6], np.float32)
    img = env.render().astype(np.float64)
    bx, by = (env.block * 64).astype(int)
    assert np.abs(img[by, bx] / 255 - BLOCK).max() < 0.02  # the block, solid
    red = img[..., 0] - img[..., 2]
    assert red[12, 12] > red[12, 25] + 20  # the effector, a faint disk at (0.2, 0.2) (pixel row 12, col 12)
    # moving the block changes the frame more than moving the effector by the same step (the old rendering,
    # with the effector's strong cone and a bare block, is the other way round)
    step = np.array([0.1, 0.0], np.float32)
    d_block = np.abs(env._image(env.agent, env.block + step) - img).sum()
    d_agent = np.abs(env._image(env.agent + step, env.block) - img).sum()
    assert d_block > 1.5 * d_agent
    # the goal image: the block on the target, the effector behind the block's start, facing the goal
    goal = env.goal_image() / 255.0
    tx, ty = (env.target * 64).astype(int)
    assert np.abs(goal[ty, tx] - BLOCK).max() < 0.02
    u = (env.target - start_block) / np.linalg.norm(env.target - start_block)
    assert np.allclose(env.goal_agent(), start_block - u * (env.half + env.radius + 0.01), atol=1e-6)


def test_push2d_goal_energy_prefers_the_pushed_block_over_the_parked_effector():
    """The diagnosis of docs/results.md as a regression test: with a random encoder, the goal-image energy of
    "block on its goal, effector at its start" is below "effector where the goal has it, block not moved"."""
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.config.wm import WMEncoderConfig
    from vjepa_cli.models.frozen import encode_frames, load_frozen_encoder

    m = ModelConfig(arch="vit_tiny", embed_dim=96, depth=2, num_heads=4, patch_size=16, tubelet_size=2,
                    num_frames=2, img_size=64, pos_embed="sincos")
    enc = load_frozen_encoder(WMEncoderConfig(path="", model=m, seed=0), "cpu")
    env, wins = Push2D(size=64), 0
    for i in range(10):
        env.reset(np.random.default_rng([0, i]))
        decoy = env._image(env.goal_agent(), env.block)  # effector at its goal place, block not moved
        pushed = env._image(env.agent, env.target)  # block on its goal, effector where it started
        z = encode_frames(enc, np.stack([env.goal_image(), decoy, pushed]))  # (3, N, D)
        wins += float((z[2] - z[0]).abs().mean()) < float((z[1] - z[0]).abs().mean())
    assert wins >= 9
