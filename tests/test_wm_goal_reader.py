"""The goal reader (`heads.goal_reader`): a CNN that reads a goal image's state from its pixels, trained on the
collection's probe resets, stored in the world-model file, and read once per goal by planning
(`plan.goal_state_from: reader`) in place of the state probe's reading of the goal features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_cli.config._load import from_dict
from vjepa_cli.config.wm import WMHeadsConfig, WMPlanConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.wm_methods import GoalState, blended_energy
from vjepa_cli.io.tensors import save_tensors
from vjepa_cli.models.goal_reader import GoalReader, GoalReaderConfig
from vjepa_cli.models.state_head import StateHead, StateHeadConfig
from vjepa_cli.train.wm_data import WMData
from vjepa_cli.train.wm_heads import check_heads, train_goal_reader

pytestmark = pytest.mark.usefixtures("one_thread")
S = 16  # frame size


def _dots(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m frames [S, S, 3] with a white 2 x 2 dot at a random place on grey, and its centre (x, y) in pixels, plus a
    third state entry that the frame does not show (noise)."""
    xy = g.integers(1, S - 2, (m, 2))
    frames = np.full((m, S, S, 3), 60, np.uint8)
    for f, (x, y) in zip(frames, xy, strict=True):
        f[y:y + 2, x:x + 2] = 255
    states = np.concatenate([xy + 0.5, g.normal(0, 1, (m, 1))], 1).astype(np.float32)
    return frames, states


def _data(tmp_path, frames: np.ndarray, states: np.ndarray) -> WMData:
    path = save_tensors(tmp_path / "probe.safetensors", {"frames": torch.from_numpy(frames),
                                                         "states": torch.from_numpy(states)}, {})
    feats = [torch.zeros(3, 4, 6)]  # one stand-in episode: the reader never looks at features
    return WMData(None, feats, [np.zeros((2, 2), np.float32)], [states[:3]], [None], ["dx", "dy"], [-1, -1], [1, 1],
                  ["x", "y", "n"], 10.0, 1, "toy", None, None, path)


def test_reader_prepares_rgb_and_coordinates_at_its_size():
    reader = GoalReader(GoalReaderConfig((0,), (0.0,), (1.0,), size=8), generator=torch.Generator())
    frames = torch.full((2, 16, 16, 3), 255, dtype=torch.uint8)
    x = reader.prepare(frames)  # resized 16 -> 8
    assert x.shape == (2, 5, 8, 8)
    torch.testing.assert_close(x[:, :3], torch.ones(2, 3, 8, 8))
    ramp = torch.linspace(-1, 1, 8)
    torch.testing.assert_close(x[0, 3], ramp.expand(8, 8))  # x grows to the right
    torch.testing.assert_close(x[0, 4], ramp.view(8, 1).expand(8, 8))  # y grows downward
    with pytest.raises(ValueError, match="multiple of 8"):
        GoalReaderConfig((0,), (0.0,), (1.0,), size=12)
    with pytest.raises(ValueError, match="std must be > 0"):
        GoalReaderConfig((0,), (0.0,), (0.0,))


def test_reader_learns_where_a_dot_is_and_reads_it_in_state_units(tmp_path):
    g = np.random.default_rng(0)
    frames, states = _dots(g, 600)
    data = _data(tmp_path, frames, states)
    cfg = WMHeadsConfig(state_dims=(0, 1), reader_steps=300, reader_batch=32, reader_lr=3e-3)
    reader, losses = train_goal_reader(data, cfg, seed=0)
    assert reader.cfg.dims == (0, 1) and reader.cfg.size == S and len(losses) == 300
    torch.testing.assert_close(reader.mean, torch.from_numpy(states[:, :2].mean(0)))
    held_f, held_s = _dots(np.random.default_rng(1), 100)
    read = torch.stack([reader.read(f) for f in held_f]).numpy()  # (100, 2) pixels
    err = np.linalg.norm(read - held_s[:, :2], axis=1)
    guess = np.linalg.norm(states[:, :2].mean(0) - held_s[:, :2], axis=1)  # the mean position: ~5 px off
    assert np.median(err) < 1.0 < np.median(guess) / 4, (np.median(err), np.median(guess))
    again, _ = train_goal_reader(data, cfg, seed=0)  # its batches and initialisation come from the seed
    assert all(torch.equal(a, b) for a, b in zip(reader.state_dict().values(), again.state_dict().values(),
                                                 strict=True))


def test_reader_needs_probe_resets_and_valid_settings(tmp_path):
    frames, states = _dots(np.random.default_rng(0), 4)
    data = _data(tmp_path, frames, states)
    data.probe_path = None
    for call in (lambda: check_heads(data, WMHeadsConfig(goal_reader=True)),
                 lambda: train_goal_reader(data, WMHeadsConfig(reader_steps=1), seed=0)):
        with pytest.raises(VjepaError, match="probe resets") as e:
            call()
        assert "data.probe_resets" in e.value.hint
    with pytest.raises(ValueError, match="reader_steps"):
        WMHeadsConfig(reader_steps=0)


class _WM:
    """A stand-in world model: a state probe of entries (0, 1) standardised by mean (1, 2), spread (2, 4), and a
    goal reader of entries (0, 1, 2) whose reading is fixed."""

    reward_head = None

    def __init__(self, reader: bool = True):
        self.state_head = StateHead(StateHeadConfig(4, 6, (0, 1), (1.0, 2.0), (2.0, 4.0)))
        self.state_head.forward = lambda z: z[..., 0, :2]
        self.goal_reader = None
        if reader:
            self.goal_reader = GoalReader(GoalReaderConfig((0, 1, 2), (0.0,) * 3, (1.0,) * 3, size=8))
            self.goal_reader.read = lambda image: torch.tensor([5.0, 10.0, -3.0])


def test_goal_state_comes_from_the_reader_standardised_like_the_probe():
    wm = _WM()
    goal = GoalState(wm, "reader")
    with pytest.raises(RuntimeError, match="set_image"):
        goal(torch.zeros(4, 6))
    goal.set_image(np.zeros((8, 8, 3), np.uint8))
    torch.testing.assert_close(goal(torch.randn(4, 6)), torch.tensor([(5 - 1) / 2, (10 - 2) / 4]))  # probe's units
    z = torch.randn(4, 6)
    torch.testing.assert_close(GoalState(wm, "probe")(z), z[0, :2])  # the probe on the goal's features
    probed = torch.randn(5, 3, 2)  # standardised planned states
    from vjepa_cli.models.world_model import Predicted

    states = probed * wm.state_head.std + wm.state_head.mean  # the same, in state units, as a predictor gives them
    wm.predictor = type("P", (), {"cfg": type("C", (), {"state_dims": (0, 1)})})()
    energy = blended_energy(wm, "final", 0.0, state_weight=1.0, goal_state=goal)
    e = energy(Predicted(torch.randn(5, 3, 4, 6), states), z)
    torch.testing.assert_close(e, (probed[:, -1] - torch.tensor([2.0, 2.0])).norm(dim=-1))
    with pytest.raises(VjepaError, match="goal reader") as err:
        GoalState(_WM(reader=False), "reader")
    assert "heads.goal_reader" in err.value.hint
    wm.goal_reader.cfg = GoalReaderConfig((0,), (0.0,), (1.0,), size=8)  # reads less than the probe compares
    with pytest.raises(VjepaError, match="reads state entries"):
        GoalState(wm, "reader")
    with pytest.raises(VjepaError, match="goal_state_from' must be one of 'probe', 'reader'"):
        from_dict(WMPlanConfig, {"goal_state_from": "oracle"})


def test_reader_in_the_model_file_and_in_eval(tmp_path):
    from tests.test_wm_cli import TINY
    from vjepa_cli.config import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.data.media.write import write_png
    from vjepa_cli.envs.reach2d import Reach2D
    from vjepa_cli.eval.wm import run_wm_eval, run_wm_plan
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.train.wm import run_wm_train

    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\n")
    sets = [*TINY, "heads.state=true", "heads.goal_reader=true", "heads.steps=5", "heads.hidden=16",
            "heads.reader_steps=4", "heads.reader_batch=4", "data.probe_resets=3", "plan.goal_weight=0",
            "plan.state_weight=1", "plan.goal_state_from=reader"]
    phases: list[list] = []  # [name, total, last step seen]
    res = run_wm_train(load_recipe(WMConfig, recipe, sets), tmp_path / "run",
                       on_phase=lambda name, total: phases.append([name, total, None]),
                       on_step=lambda i, info: phases[-1].__setitem__(2, i))
    assert phases[-2:] == [["state head", 5, 4], ["goal reader", 4, 3]]  # the progress bar follows the heads too
    wm = load_world_model(res.model_path)  # strict: the reader's weights match its stored config
    assert wm.goal_reader is not None and wm.goal_reader.cfg.size == 32 and "goal_reader" in wm.meta["heads_loss"]
    assert wm.plan.goal_state_from == "reader"
    ev = run_wm_eval(res.model_path, "reach2d", episodes=1, methods=["cem"], out_dir=tmp_path / "ev", device="cpu")
    assert ev.rows[0].method == "world model (CEM)"
    env = Reach2D(size=32)
    env.reset(np.random.default_rng(1))
    write_png(tmp_path / "s.png", env.render())
    write_png(tmp_path / "g.png", env.goal_image())
    p = run_wm_plan(res.model_path, tmp_path / "s.png", tmp_path / "g.png", seed=0, device="cpu")
    z = wm.encode(np.stack([env.render(), env.goal_image()]))  # (2, N, D)
    with torch.no_grad():  # the plan's energy: the probed final state against the reader's reading of the goal
        probed = wm.state_head(wm.rollout(z[0], torch.tensor([p.actions]))[:, -1])[0]
        goal = wm.state_head.standardise(wm.goal_reader.read(env.goal_image()), wm.goal_reader.cfg.dims)
    assert p.energy == pytest.approx(float((probed - goal).norm()), rel=1e-4, abs=1e-6)
    probe = run_wm_plan(res.model_path, tmp_path / "s.png", tmp_path / "g.png", ["plan.goal_state_from=probe"],
                        seed=0, device="cpu")
    assert probe.energy != pytest.approx(p.energy, rel=1e-3)  # the probe reads the goal differently
