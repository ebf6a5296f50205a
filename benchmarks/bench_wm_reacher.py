"""Why does planning toward goal images fail on Gymnasium Reacher-v5? Two measurements, no predictor involved:

1. the goal-image energy (L1 between frozen-encoder features of a frame and of the goal image) on frames of the
   replayed goal actions (the oracle's path) and of random actions from the same seeded start: its Spearman
   correlation with the fingertip's distance to the goal, and how often a frame within the success radius
   (0.02 m) has a lower energy than a frame farther than 0.05 m (1.0 = the energy ranks them perfectly);
2. momentum: how far the fingertip coasts under zero actions after random ones (a planner that starts from one
   frame sees no velocity; `plan.context` > 1 gives it the recent frames and actions).
3. with `--plan-true-sim N`: the ceiling of the planner itself. CEM (the recipe's 64 samples x 3 iterations, top
   8) plans with the *true simulator* as its model (MuJoCo state restored for every sampled sequence, each step
   rendered and encoded) toward the same goal images, N episodes of 50 steps: what a perfect predictor would
   reach with this energy, horizon and budget.

    python benchmarks/bench_wm_reacher.py --episodes 20 [--model runs/reacher-vjepa/model.safetensors]
    python benchmarks/bench_wm_reacher.py --episodes 4 --plan-true-sim 12 --horizon 6
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if np.std(ra) > 0 and np.std(rb) > 0 else float("nan")


def _encoder(model: str | None, size: int):
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.config.wm import WMEncoderConfig
    from vjepa_cli.models.frozen import load_frozen_encoder

    m = ModelConfig(arch="vit_tiny", embed_dim=96, depth=2, num_heads=4, patch_size=16, tubelet_size=2,
                    num_frames=2, img_size=size, pos_embed="sincos")
    return load_frozen_encoder(WMEncoderConfig(path=model or "", model=m, seed=0), "cpu")


def energy_ranking(episodes: int, model: str | None, size: int) -> dict:
    from vjepa_cli.envs.gym import make_gym_env
    from vjepa_cli.models.frozen import encode_frames

    enc, env = _encoder(model, size), make_gym_env("Reacher-v5", size=size, goal_steps=25)
    corr, wins, pairs = [], 0, 0
    try:
        for i in range(episodes):
            rng = np.random.default_rng([0, i])
            env.reset(rng)
            frames, dist = [env.render()], [env.distance()]
            for _ in range(25):  # the oracle's path: the goal actions replayed
                frames.append(env.step(env.oracle_action()))
                dist.append(env.distance())
            env.reset(np.random.default_rng([0, i]))
            for _ in range(25):  # random actions from the same start
                frames.append(env.step(rng.uniform(-1, 1, 2)))
                dist.append(env.distance())
            z = encode_frames(enc, np.stack([*frames, env.goal_image()]))  # (F + 1, N, D)
            e, d = (z[:-1] - z[-1]).abs().mean((1, 2)).numpy(), np.asarray(dist)
            corr.append(_spearman(e, d))
            near, far = e[d < 0.02], e[d > 0.05]
            wins += int((near[:, None] < far[None, :]).sum())
            pairs += near.size * far.size
    finally:
        env.close()
    return {"encoder": model or "random (seed 0)", "size": size, "episodes": episodes,
            "spearman_energy_vs_fingertip_distance": float(np.nanmean(corr)),
            "near_below_far": wins / max(pairs, 1)}


def coasting(episodes: int) -> dict:
    from vjepa_cli.envs.gym import make_gym_env

    env, drift = make_gym_env("Reacher-v5", size=32, goal_steps=0), []
    try:
        for i in range(episodes):
            rng = np.random.default_rng([1, i])
            env.reset(rng)
            for _ in range(10):
                env.step(rng.uniform(-1, 1, 2))
            p0 = env.task_state()
            for _ in range(10):
                env.step(np.zeros(2, np.float32))
            drift.append(float(np.linalg.norm(env.task_state() - p0)))
    finally:
        env.close()
    return {"coast_10_zero_actions_m": float(np.median(drift)), "success_radius_m": 0.02}


def plan_true_sim(episodes: int, model: str | None, size: int, horizon: int, samples: int,
                  max_steps: int = 50, energy: str = "l1", wm_path: str | None = None) -> dict:
    """CEM with the true simulator as the model: success rate (and final distances) toward the goal images.

    `energy`: "l1" (the goal-image energy), "state" (the state probe of the world model `wm_path`: its encoder
    and probe), "l1+state" (their sum) or "true" (the true fingertip distance to the goal: no images at all,
    the ceiling of the planner itself)."""
    import torch

    from vjepa_cli.config.plan import CEMConfig
    from vjepa_cli.envs.gym import make_gym_env
    from vjepa_cli.models.frozen import encode_frames
    from vjepa_cli.plan.base import energy_l1
    from vjepa_cli.plan.cem import cem_plan

    env = make_gym_env("Reacher-v5", size=size, goal_steps=25)
    if "state" in energy:
        from vjepa_cli.models.world_model import load_world_model

        wm = load_world_model(wm_path)
        enc, probe = wm.encoder, wm.state_head
    else:
        enc, probe = _encoder(model, size), None
    sim, rng, wins, dists = env._inner, np.random.default_rng(0), 0, []
    low, high = np.asarray(env.spec.action_low), np.asarray(env.spec.action_high)

    def tip() -> np.ndarray:
        return sim.get_body_com("fingertip")[:2].copy()

    def rollout(state, acts):  # acts (S, H, 2) -> features (S, H, N, D) of the true frames, or tips (S, H, 2)
        frames = []
        for seq in acts.numpy():
            sim.set_state(*state)
            for a in seq:
                sim.do_simulation(np.clip(a, low, high), sim.frame_skip)
                env._sync()
                frames.append(tip() if energy == "true" else env.render())
        sim.set_state(*state)
        env._sync()
        if energy == "true":
            return torch.from_numpy(np.stack(frames)).float().view(acts.shape[0], acts.shape[1], 2)
        z = encode_frames(enc, np.stack(frames))
        return z.view(acts.shape[0], acts.shape[1], *z.shape[1:])

    def energy_fn(pred, goal):  # (S, H, ...) -> (S,)
        if energy == "true":
            return (pred[:, -1] - goal).norm(dim=-1)
        e = probe.distance(pred[:, -1], goal) if probe is not None else 0.0
        return e + energy_l1(pred, goal) if energy != "state" else e

    try:
        cfg = CEMConfig(low=env.spec.action_low, high=env.spec.action_high, horizon=horizon, samples=samples,
                        topk=8, iterations=3, momentum_mean=0.1, momentum_std=0.1)
        for i in range(episodes):
            env.reset(rng)
            if energy == "true":  # the goal fingertip (the task state the success test compares)
                z_goal = torch.as_tensor(np.asarray(env._goal_state)[:2], dtype=torch.float32)
            else:
                z_goal = encode_frames(enc, env.goal_image()[None])[0]
            g, prev = torch.Generator().manual_seed(i), None
            for _ in range(max_steps):
                init = None if prev is None else torch.cat([prev[1:], prev[-1:]])
                prev = cem_plan(rollout, (sim.data.qpos.copy(), sim.data.qvel.copy()), z_goal, cfg, g,
                                init_mean=init, energy_fn=energy_fn).actions
                env.step(prev[0].numpy())
                if env.success():
                    break
            wins += bool(env.success())
            dists.append(env.distance())
    finally:
        env.close()
    return {"true_sim_episodes": episodes, "true_sim_horizon": horizon, "true_sim_samples": samples,
            "true_sim_energy": energy,
            "true_sim_success": wins / max(episodes, 1), "true_sim_final_distance_m": float(np.mean(dists))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--model", default=None, help="model file for the encoder (default: random, seed 0)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--plan-true-sim", type=int, default=0, metavar="N", help="also plan N episodes on the true simulator")
    ap.add_argument("--horizon", type=int, default=3, help="CEM horizon of --plan-true-sim")
    ap.add_argument("--samples", type=int, default=64, help="CEM samples of --plan-true-sim")
    ap.add_argument("--energy", choices=["l1", "state", "l1+state", "true"], default="l1",
                    help="planning energy of --plan-true-sim (state: the probe of --wm; true: fingertip distance)")
    ap.add_argument("--wm", default=None, help="world-model file with a state head (--energy state, l1+state)")
    ap.add_argument("--skip-ranking", action="store_true", help="only --plan-true-sim")
    args = ap.parse_args()
    if "state" in args.energy and not args.wm:
        ap.error("--energy state needs --wm WM (a world model trained with heads.state=true)")
    row = {} if args.skip_ranking else {**energy_ranking(args.episodes, args.model, args.size),
                                        **coasting(args.episodes)}
    if args.plan_true_sim:
        row.update(plan_true_sim(args.plan_true_sim, args.model, args.size, args.horizon, args.samples,
                                 energy=args.energy, wm_path=args.wm))
    for k, v in row.items():
        print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
