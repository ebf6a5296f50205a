"""`vjepa wm eval`: closed-loop MPC in a built-in simulator, next to a random-action baseline and the
scripted oracle, on the same episode seeds; plus `run_wm_plan` for one start/goal image pair."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa_cli.config._load import apply_sets, from_dict, to_dict
from vjepa_cli.config.wm import WMConfig, WMPlanConfig
from vjepa_cli.data.media import read_image, write_png
from vjepa_cli.envs.registry import ENVS, make_env
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.models.world_model import WorldModel, load_world_model
from vjepa_cli.plan.mpc import MPC, EpisodeLog, run_mpc_episode, run_policy_episode
from vjepa_cli.plan.registry import make_planner
from vjepa_cli.plot import image_grid
from vjepa_cli.runtime import resolve_device

WM_METHOD = "world model (CEM)"  # the planned method's row name; the baselines are "random" and "oracle"


@dataclass(frozen=True)
class MethodStats:
    method: str  # "world model (CEM)", "random", "oracle"
    success_rate: float  # fraction of episodes solved
    final_distance: float  # mean task distance at the end
    steps: float  # mean actions per episode (to success, or the limit)
    plan_ms: float | None  # mean planning time per action, milliseconds (None for baselines)
    confidence: float | None = None  # mean CEM confidence (world model only)


@dataclass(frozen=True)
class WMEvalResult:
    env: str  # environment name
    episodes: int  # episodes per method
    max_steps: int  # actions allowed per episode
    rows: list[MethodStats]  # one per method, the world model first
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


def _stats(name: str, logs: list[EpisodeLog], planned: bool) -> MethodStats:
    secs = [s for lg in logs for s in lg.plan_seconds]
    conf = [c for lg in logs for c in lg.confidences]
    return MethodStats(name, float(np.mean([lg.success for lg in logs])), float(np.mean([lg.distances[-1] for lg in logs])),
                       float(np.mean([lg.steps for lg in logs])), 1000 * float(np.mean(secs)) if planned and secs else None,
                       float(np.mean(conf)) if planned and conf else None)


def _strip(log: EpisodeLog, cols: int = 8) -> list[np.ndarray]:
    idx = np.linspace(0, len(log.frames) - 1, cols - 1).round().astype(int)
    return [log.frames[i] for i in idx] + [log.goal]


def _methods(wm: WorldModel, plan: WMPlanConfig, seed: int, baselines: bool) -> dict[str, Callable[[Any], EpisodeLog]]:
    """Method name -> run one episode on a reset environment: MPC with the world model, then the baselines."""
    planner = make_planner(plan.method, wm.rollout, plan.planner_for(wm.action_low, wm.action_high))
    gen = torch.Generator(device=wm.device).manual_seed(seed)

    def encode(frame: np.ndarray) -> torch.Tensor:
        return wm.encode(frame[None])[0]  # (N, D)

    def mpc(z_goal: torch.Tensor) -> MPC:
        return MPC(planner, z_goal, gen, prior_weight=plan.prior_weight)

    methods = {WM_METHOD: lambda env: run_mpc_episode(env, encode, mpc, plan.max_steps)}
    if baselines:
        rng = np.random.default_rng(seed + 1)
        low, high = np.asarray(wm.action_low), np.asarray(wm.action_high)
        methods["random"] = lambda env: run_policy_episode(env, lambda e: rng.uniform(low, high), plan.max_steps)
        methods["oracle"] = lambda env: run_policy_episode(env, lambda e: e.oracle_action(), plan.max_steps)
    return methods


def run_wm_eval(model_path: str | Path, env_name: str, episodes: int = 50, seed: int = 0,
                sets: list[str] | tuple[str, ...] = (), device: str | None = None, baselines: bool = True,
                out_dir: str | Path | None = None, show: int = 4,
                on_episode: Callable[[str, int], None] | None = None) -> WMEvalResult:
    """Run MPC with the world model on `episodes` seeded episodes (and the baselines on the same seeds).

    Writes `out_dir/eval.json` (default folder: `eval-<env>` next to the model) and `out_dir/trajectories.png`
    (the first `show` world-model episodes, frames left to right, the goal last)."""
    if env_name not in ENVS:
        raise VjepaError(f"wm eval needs a built-in environment with goal images, not '{env_name}'",
                         "registered: " + ", ".join(ENVS))
    if episodes < 1:
        raise VjepaError("--episodes must be >= 1")
    wm = load_world_model(model_path, resolve_device(device))
    plan = plan_settings(wm, sets)
    trained_on = wm.meta.get("env") or ""
    if trained_on and trained_on != env_name:
        raise VjepaError(f"{model_path} was trained on {trained_on}, not {env_name}", f"use --env {trained_on}")
    size = wm.meta.get("wm_config", {}).get("data", {}).get("size", 64)
    rows, shown = [], []
    for name, run in _methods(wm, plan, seed, baselines).items():
        logs = []
        for i in range(episodes):
            env = make_env(env_name, size=size)
            env.reset(np.random.default_rng([seed, i]))
            logs.append(run(env))
            if on_episode:
                on_episode(name, i)
        rows.append(_stats(name, logs, planned=name == WM_METHOD))
        shown = logs[:show] if name == WM_METHOD else shown
    out_dir = Path(out_dir) if out_dir is not None else Path(model_path).parent / f"eval-{env_name}"
    png = write_png(out_dir / "trajectories.png", image_grid([im for lg in shown for im in _strip(lg)], ncols=8, pad=2))
    res = WMEvalResult(env_name, episodes, plan.max_steps, rows, png, str(wm.device), out_dir)
    write_text_atomic(res.json_path, json.dumps(res.record(), indent=2) + "\n")
    return res


@dataclass(frozen=True)
class WMPlanResult:
    actions: list[list[float]]  # (H, A) planned actions; the first is the one to execute
    action_names: list[str]  # one per action dimension
    energy: float  # predicted L1 distance to the goal after the plan
    start_energy: float  # L1 distance between start and goal features
    confidence: float  # the planner's confidence in the plan, in (0, 1]
    seconds: float  # planning time


def run_wm_plan(model_path: str | Path, start: str | Path, goal: str | Path, sets: list[str] | tuple[str, ...] = (),
                seed: int = 0, device: str | None = None) -> WMPlanResult:
    """Plan a sequence of actions from a start image toward a goal image (open loop)."""
    wm = load_world_model(model_path, resolve_device(device))
    plan = plan_settings(wm, sets)
    s_img, g_img = read_image(start), read_image(goal)
    if s_img.shape != g_img.shape:
        raise VjepaError(f"start and goal images differ in size: {s_img.shape[:2]} vs {g_img.shape[:2]}")
    z = wm.encode(np.stack([s_img, g_img]))  # (2, N, D)
    planner = make_planner(plan.method, wm.rollout, plan.planner_for(wm.action_low, wm.action_high))
    t0 = time.perf_counter()
    res = planner.plan(z[0], z[1], torch.Generator(device=wm.device).manual_seed(seed))
    return WMPlanResult(res.actions.cpu().tolist(), list(wm.action_names), res.energy,
                        float((z[0] - z[1]).abs().mean()), res.confidence, time.perf_counter() - t0)
