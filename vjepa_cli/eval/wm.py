"""`vjepa wm eval`: closed-loop MPC in a built-in simulator, next to a random-action baseline and the
scripted oracle, on the same episode seeds; plus `run_wm_plan` for one start/goal image pair."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vjepa_cli.config._load import apply_sets, from_dict, to_dict
from vjepa_cli.config.wm import WMPlanConfig
from vjepa_cli.data.media import read_image, write_png
from vjepa_cli.envs.builtin import ENVS, make_env
from vjepa_cli.errors import VjepaError
from vjepa_cli.models.world_model import WorldModel, load_world_model
from vjepa_cli.plan.cem import cem_plan
from vjepa_cli.plan.mpc import EpisodeLog, Planner, cem_config, run_mpc_episode, run_policy_episode
from vjepa_cli.plot import image_grid
from vjepa_cli.runtime import resolve_device


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
    env: str
    episodes: int
    max_steps: int
    rows: list[MethodStats]
    png: Path | None  # picture of a few world-model trajectories
    device: str


def plan_settings(wm: WorldModel, sets: list[str] | tuple[str, ...] = ()) -> WMPlanConfig:
    """The model's stored plan defaults with `plan.<key>=value` overrides."""
    bad = [s for s in sets if not s.startswith("plan.")]
    if bad:
        raise VjepaError(f"--set {bad[0]}: only plan.* keys can be set here", "e.g. --set plan.samples=256")
    data = apply_sets({"plan": to_dict(wm.plan)}, sets)
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


def run_wm_eval(model_path: str | Path, env_name: str, episodes: int = 50, seed: int = 0,
                sets: list[str] | tuple[str, ...] = (), device: str = "cpu", baselines: bool = True,
                png_path: str | Path | None = None, show: int = 4,
                on_episode: Callable[[str, int], None] | None = None) -> WMEvalResult:
    """Run MPC with the world model on `episodes` seeded episodes (and the baselines on the same seeds)."""
    if env_name not in ENVS:
        raise VjepaError(f"wm eval needs a built-in environment with goal images, not '{env_name}'",
                         "use " + " or ".join(ENVS))
    if episodes < 1:
        raise VjepaError("--episodes must be >= 1")
    wm = load_world_model(model_path, resolve_device(device))
    plan = plan_settings(wm, sets)
    trained_on = wm.meta.get("env") or ""
    if trained_on and trained_on != env_name:
        raise VjepaError(f"{model_path} was trained on {trained_on}, not {env_name}", f"use --env {trained_on}")
    size = wm.meta.get("wm_config", {}).get("data", {}).get("size", 64)
    cem = cem_config(plan, wm.action_low, wm.action_high)
    gen = torch.Generator(device=wm.device).manual_seed(seed)

    def encode(frame):
        return wm.encode(frame[None])[0]  # (N, D)

    def factory(z_goal):
        return Planner(wm.rollout, z_goal, cem, gen, prior_weight=plan.prior_weight)

    methods: dict[str, Callable[[object, int], EpisodeLog]] = {
        "world model (CEM)": lambda env, i: run_mpc_episode(env, encode, factory, plan.max_steps)}
    if baselines:
        rng = np.random.default_rng(seed + 1)
        low, high = np.asarray(wm.action_low), np.asarray(wm.action_high)
        methods["random"] = lambda env, i: run_policy_episode(env, lambda e: rng.uniform(low, high), plan.max_steps)
        methods["oracle"] = lambda env, i: run_policy_episode(env, lambda e: e.oracle_action(), plan.max_steps)
    rows, shown = [], []
    for name, run in methods.items():
        logs = []
        for i in range(episodes):
            env = make_env(env_name, size=size)
            env.reset(np.random.default_rng([seed, i]))
            logs.append(run(env, i))
            if on_episode:
                on_episode(name, i)
        rows.append(_stats(name, logs, planned=name.startswith("world")))
        if name.startswith("world"):
            shown = logs[:show]
    png = None
    if png_path is not None and shown:
        png = write_png(png_path, image_grid([im for lg in shown for im in _strip(lg)], ncols=8, pad=2))
    return WMEvalResult(env_name, episodes, plan.max_steps, rows, png, str(wm.device))


@dataclass(frozen=True)
class WMPlanResult:
    actions: list[list[float]]  # (H, A) planned actions; the first is the one to execute
    action_names: list[str]
    energy: float  # predicted L1 distance to the goal after the plan
    start_energy: float  # L1 distance between start and goal features
    confidence: float
    seconds: float


def run_wm_plan(model_path: str | Path, start: str | Path, goal: str | Path, sets: list[str] | tuple[str, ...] = (),
                seed: int = 0, device: str = "cpu") -> WMPlanResult:
    """Plan a sequence of actions from a start image toward a goal image (open loop)."""
    wm = load_world_model(model_path, resolve_device(device))
    plan = plan_settings(wm, sets)
    s_img, g_img = read_image(start), read_image(goal)
    if s_img.shape != g_img.shape:
        raise VjepaError(f"start and goal images differ in size: {s_img.shape[:2]} vs {g_img.shape[:2]}")
    z = wm.encode(np.stack([s_img, g_img]))  # (2, N, D)
    cem = cem_config(plan, wm.action_low, wm.action_high)
    t0 = time.perf_counter()
    res = cem_plan(wm.rollout, z[0], z[1], cem, torch.Generator(device=wm.device).manual_seed(seed))
    return WMPlanResult(res.actions.cpu().tolist(), list(wm.action_names), res.energy,
                        float((z[0] - z[1]).abs().mean()), res.confidence, time.perf_counter() - t0)
