"""`vjepa wm eval`: closed-loop MPC in a built-in simulator, next to a random-action baseline and the
scripted oracle, on the same episode seeds; plus `run_wm_plan` for one start/goal image pair."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.config._load import apply_sets, from_dict, to_dict
from vjepa_cli.config.wm import WMConfig, WMPlanConfig
from vjepa_cli.data.media import read_image, write_png
from vjepa_cli.envs.registry import ENVS, GYM_PREFIX, canonical_env, make_env
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.wm_methods import GoalState, method_label, plan_energy, plan_rollout, planned_method
from vjepa_cli.eval.wm_methods import baselines as baseline_methods
from vjepa_cli.eval.wm_stats import MethodStats, method_stats
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.models.world_model import WorldModel, load_world_model
from vjepa_cli.plan.mpc import EpisodeLog
from vjepa_cli.plan.registry import make_planner
from vjepa_cli.plot import image_grid
from vjepa_cli.runtime import autocast, resolve_device


@dataclass(frozen=True)
class WMEvalResult:
    env: str  # environment name
    episodes: int  # episodes per method
    max_steps: int  # actions allowed per episode
    rows: list[MethodStats]  # one per method, the world model(s) first
    png: Path | None  # picture of a few world-model trajectories
    device: str  # where the model ran
    out_dir: Path  # folder holding eval.json and trajectories.png

    @property
    def json_path(self) -> Path:
        return self.out_dir / "eval.json"

    def record(self) -> dict[str, Any]:
        """The content of eval.json (and of `wm eval --json`)."""
        return {"env": self.env, "episodes": self.episodes, "max_steps": self.max_steps, "device": self.device,
                "png": str(self.png) if self.png else None, "methods": [asdict(r) for r in self.rows]}


def plan_settings(wm: WorldModel, sets: list[str] | tuple[str, ...] = ()) -> WMPlanConfig:
    """The model's stored plan defaults with `plan.<key>=value` overrides (either spelling, see WMPlanConfig)."""
    bad = [s for s in sets if not s.startswith("plan.")]
    if bad:
        raise VjepaError(f"--set {bad[0]}: only plan.* keys can be set here", "e.g. --set plan.cem.samples=256")
    data = apply_sets({"plan": to_dict(wm.plan)}, sets, WMConfig)
    return from_dict(WMPlanConfig, data["plan"], "plan settings")


def _strip(log: EpisodeLog, cols: int = 8) -> list[np.ndarray]:
    idx = np.linspace(0, len(log.frames) - 1, cols - 1).round().astype(int)
    return [log.frames[i] for i in idx] + [log.goal]


def _goal_env(wm: WorldModel, env_name: str, goal_steps: int | None, goal_policy: str | None):
    """The environment with the model's frame size and the recipe's goal settings (overridable)."""
    data = wm.meta.get("wm_config", {}).get("data", {})
    return make_env(env_name, size=data.get("size", 64),
                    goal_steps=data.get("goal_steps", 25) if goal_steps is None else goal_steps,
                    goal_policy=goal_policy or data.get("goal_policy", "random"),
                    success_radius=data.get("success_radius", 0.0))


def run_wm_eval(model_path: str | Path, env_name: str, episodes: int = 50, seed: int = 0,
                sets: list[str] | tuple[str, ...] = (), device: str | None = None, dtype: str = "fp32",
                baselines: bool = True,
                out_dir: str | Path | None = None, show: int = 4, methods: Sequence[str] = (),
                goal_steps: int | None = None, goal_policy: str | None = None,
                on_episode: Callable[[str, int], None] | None = None) -> WMEvalResult:
    """Run MPC with the world model for each method in `methods` (`<planner>[+prior][+reward|+reward-only]`,
    see `eval/wm_methods.py`; default: the model's `plan.method`) on `episodes` seeded episodes, and the
    baselines (random actions; the scripted or replayed-goal oracle where the environment has one; the learned
    policy head where the model has one) on the same seeds, so the same starts and goals.

    Writes `out_dir/eval.json` (default folder: `eval-<env>` next to the model) and `out_dir/trajectories.png`
    (the first `show` episodes of the first method, frames left to right, the goal last). `dtype`: autocast
    precision of encoding and planning (bf16/fp16; fp32 = none)."""
    if not env_name.startswith(GYM_PREFIX) and env_name not in ENVS:
        raise VjepaError(f"unknown environment '{env_name}'", "registered: " + ", ".join(ENVS) + f", or {GYM_PREFIX}<id>")
    if episodes < 1:
        raise VjepaError("--episodes must be >= 1")
    wm = load_world_model(model_path, resolve_device(device))
    plan = plan_settings(wm, sets)
    trained_on = wm.meta.get("env") or ""
    if trained_on and canonical_env(trained_on) != canonical_env(env_name):
        raise VjepaError(f"{model_path} was trained on {trained_on}, not {env_name}", f"use --env {trained_on}")
    runs = {method_label(m): planned_method(wm, plan, m, seed) for m in (methods or [plan.method])}
    first = next(iter(runs))
    env = _goal_env(wm, env_name, goal_steps, goal_policy)
    if baselines:
        runs.update(baseline_methods(wm, plan, seed, oracle=getattr(env, "has_oracle", True)))
    rows, shown = [], []
    try:
        for name, run in runs.items():
            logs = []
            for i in range(episodes):
                env.reset(np.random.default_rng([seed, i]))  # the same start and goal for every method
                if env.goal_image() is None:
                    raise VjepaError(f"{env_name} has no goal image", "use --goal-steps > 0")
                with autocast(wm.device, dtype):
                    logs.append(run(env))
                if on_episode:
                    on_episode(name, i)
            rows.append(method_stats(name, logs, planned=name.startswith("world model")))
            shown = logs[:show] if name == first else shown
    finally:
        if hasattr(env, "close"):
            env.close()
    out_dir = Path(out_dir) if out_dir is not None else Path(model_path).parent / f"eval-{env_name.replace(':', '-').replace('/', '-')}"
    png = write_png(out_dir / "trajectories.png", image_grid([im for lg in shown for im in _strip(lg)], ncols=8, pad=2))
    res = WMEvalResult(env_name, episodes, plan.max_steps, rows, png, str(wm.device), out_dir)
    write_text_atomic(res.json_path, json.dumps(res.record(), indent=2) + "\n")
    return res


@dataclass(frozen=True)
class WMPlanResult:
    actions: list[list[float]]  # (H, A) planned actions; the first is the one to execute
    action_names: list[str]  # one per action dimension
    energy: float  # the plan's energy: the predicted L1 distance to the goal, unless the plan weights say otherwise
    start_energy: float  # L1 distance between start and goal features
    confidence: float  # the planner's confidence in the plan, in (0, 1]
    seconds: float  # planning time


def run_wm_plan(model_path: str | Path, start: str | Path, goal: str | Path, sets: list[str] | tuple[str, ...] = (),
                seed: int = 0, device: str | None = None, dtype: str = "fp32") -> WMPlanResult:
    """Plan a sequence of actions from a start image toward a goal image (open loop); `dtype`: autocast
    precision of encoding and planning (bf16/fp16; fp32 = none)."""
    wm = load_world_model(model_path, resolve_device(device))
    plan = plan_settings(wm, sets)
    s_img, g_img = read_image(start), read_image(goal)
    if s_img.shape != g_img.shape:
        raise VjepaError(f"start and goal images differ in size: {s_img.shape[:2]} vs {g_img.shape[:2]}")
    with autocast(wm.device, dtype):
        z = wm.encode(np.stack([s_img, g_img]))  # (2, N, D)
        cfg = plan.planner_for(wm.action_low, wm.action_high)
        goal = GoalState(wm, plan.goal_state_from)
        goal.set_image(g_img)
        planner = make_planner(plan.method, plan_rollout(wm, plan), cfg, plan_energy(wm, plan, cfg.energy, goal=goal))
        t0 = time.perf_counter()
        res = planner.plan(z[0], z[1], torch.Generator(device=wm.device).manual_seed(seed))
    return WMPlanResult(res.actions.cpu().tolist(), list(wm.action_names), res.energy,
                        float((z[0] - z[1]).abs().mean()), res.confidence, time.perf_counter() - t0)
