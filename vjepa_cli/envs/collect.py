"""`vjepa wm collect`: record episodes from a simulator with a random or scripted-noisy policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vjepa_cli.data.episodes import PROBE_FILE, Episode, write_episode, write_manifest
from vjepa_cli.data.manifest import ManifestRow
from vjepa_cli.data.manifest import write_manifest as write_video_manifest
from vjepa_cli.envs.registry import make_env
from vjepa_cli.errors import VjepaError

# the episodes' videos as a video manifest: `vjepa pretrain --set "data.datasets=[DIR/videos.csv]"`
VIDEOS = "videos.csv"
PROBE_STREAM = 0x5EED_9B0E  # the resets' generator is default_rng([seed, PROBE_STREAM]): not the episodes' or eval's


@dataclass(frozen=True)
class CollectResult:
    out_dir: Path  # folder holding manifest.csv and the episode folders
    episodes: int  # episodes written
    frames: int  # frames written in total
    solved: int  # episodes that ended within the task's success radius
    probe_frames: int = 0  # frames written to PROBE_FILE (the state probe's resets)


def policy_action(env, policy: str, rng: np.random.Generator, noise: float = 0.6) -> np.ndarray:
    """One action: uniform in the bounds ("random"), or the scripted expert plus Gaussian noise ("noisy")."""
    low, high = np.asarray(env.spec.action_low), np.asarray(env.spec.action_high)
    if policy == "random":
        return rng.uniform(low, high).astype(np.float32)
    if policy == "noisy":
        a = env.oracle_action() + rng.normal(0, noise * (high - low) / 2)
        return np.clip(a, low, high).astype(np.float32)
    raise VjepaError(f"unknown policy '{policy}'", "use random or noisy")


def step_reward(env) -> float:
    """The reward of the last step: the environment's own (Gymnasium), else minus the task distance."""
    r = getattr(env, "reward", None)
    return float(r) if r is not None else -float(env.distance())


def run_wm_collect(env_name: str, episodes: int, out_dir: str | Path, steps: int = 24, size: int = 64,
                   seed: int = 0, policy: str = "random", goal_steps: int = 0, goal_policy: str = "random",
                   on_episode: Callable[[int], None] | None = None, probe_resets: int = 0,
                   on_reset: Callable[[int], None] | None = None) -> CollectResult:
    """Record `episodes` episodes of `steps` actions (steps + 1 frames) into `out_dir`, with the rewards (the
    Gymnasium environment's, or minus the task distance for the built-in simulators) and, where there is one,
    the goal image (Gymnasium environments: after `goal_steps` actions of `goal_policy`, see `envs/gym.py`);
    then `probe_resets` more seeded resets for the state probe (`collect_probe_poses`)."""
    if episodes < 1 or steps < 1:
        raise VjepaError("--episodes and --steps must be >= 1")
    if probe_resets < 0:
        raise VjepaError("--probe-resets must be >= 0")
    if policy not in ("random", "noisy"):
        raise VjepaError(f"unknown policy '{policy}'", "use random or noisy")
    env = make_env(env_name, size=size, goal_steps=goal_steps, goal_policy=goal_policy)
    out_dir = Path(out_dir)
    if (out_dir / "manifest.csv").exists():
        raise VjepaError(f"{out_dir} already holds episodes", "choose a new -o folder")
    rng = np.random.default_rng(seed)
    rows, total, solved = [], 0, 0
    for i in range(episodes):
        frames = [env.reset(rng)]
        goal = env.goal_image() if hasattr(env, "goal_image") else None
        states = [env.state()]
        actions, rewards = [], []
        for _ in range(steps):
            a = policy_action(env, policy, rng)
            frames.append(env.step(a))
            actions.append(a)
            rewards.append(step_reward(env))
            states.append(env.state())
            if getattr(env, "done", False):
                break
        ok = bool(env.success()) if goal is not None and hasattr(env, "success") else False
        solved += ok
        info = {"env": env.spec.name, "policy": policy, "seed": seed, "index": i, "success": ok}
        if getattr(env, "target", None) is not None:
            info["target"] = [float(x) for x in env.target]
        ep = Episode(
            frames=np.stack(frames), actions=np.stack(actions).astype(np.float32),
            states=None if states[0] is None else np.stack(states).astype(np.float32), fps=env.spec.fps,
            action_names=env.spec.action_names, state_names=env.spec.state_names,
            action_low=env.spec.action_low, action_high=env.spec.action_high, goal=goal, info=info,
            rewards=np.asarray(rewards, dtype=np.float32),
        )
        name = f"ep_{i:05d}"
        write_episode(out_dir / name, ep)
        total += len(frames)
        rows.append({"path": name, "num_frames": len(frames), "fps": env.spec.fps, "width": size, "height": size})
        write_manifest(out_dir, rows)  # after every episode: an interrupted run leaves a valid collection
        write_video_manifest(out_dir / VIDEOS, [ManifestRow(str(out_dir / r["path"] / "frames.mp4"),
                                                            num_frames=r["num_frames"], fps=r["fps"], width=size,
                                                            height=size) for r in rows])
        if on_episode is not None:
            on_episode(i)
    probe = collect_probe_poses(env, probe_resets, np.random.default_rng([seed, PROBE_STREAM]), out_dir / PROBE_FILE,
                                on_reset) if probe_resets else 0
    if hasattr(env, "close"):
        env.close()
    return CollectResult(out_dir, len(rows), total, solved, probe)


def collect_probe_poses(env, resets: int, rng: np.random.Generator, path: Path,
                        on_reset: Callable[[int], None] | None = None) -> int:
    """Write `path`: the first frame of `resets` seeded resets and, where the environment builds a goal, the
    goal frame too, each with its state (frames uint8 [M, H, W, 3], states float32 [M, S]) -> M.

    The state probe reads the goal image at planning time; episodes show it few poses (an episode's block hardly
    moves), and seeded resets with their goal frames are cheap poses from the very distribution it must read."""
    import torch

    from vjepa_cli.io.tensors import save_tensors

    frames, states = [], []
    for i in range(resets):
        frames.append(env.reset(rng))
        states.append(env.state())
        if states[-1] is None:
            raise VjepaError(f"{env.spec.name} has no states: nothing for --probe-resets to record",
                             "collect without --probe-resets")
        goal_obs = env.goal_observation() if hasattr(env, "goal_observation") else None
        if goal_obs is not None and env.goal_image() is not None:
            frames.append(env.goal_image())
            states.append(goal_obs)
        if on_reset is not None:
            on_reset(i)
    save_tensors(path, {"frames": torch.from_numpy(np.stack(frames)),
                        "states": torch.from_numpy(np.stack(states).astype(np.float32))},
                 {"env": env.spec.name, "resets": resets, "state_names": list(env.spec.state_names)})
    return len(frames)
