"""How far can planning toward PushT goals go with a perfect model? The planner's own ceiling on gym-pusht.

CEM plans with the *true simulator* as its model: for every sampled action sequence the pymunk bodies (agent
and block: position, angle, velocities) are restored and the sequence is stepped for real. The goals are the
`wm/pusht` recipe's (a seeded reset, 12 scripted pushing actions, that block pose; `wm eval`'s episodes:
episode i of seed s uses rng [s, i]) and so is the success test (block within 20 px and pi / 9 rad). What the
energy reads:

- `block`: the block pose's distance to the goal pose, each part in units of its success threshold
  (`|xy - goal_xy| / 20 px + |angle gap| / (pi / 9)`): the task itself, nothing a camera must show;
- `block+agent`: that plus the agent's distance to where the goal policy left it (`/ 100 px`), which the
  goal image shows and the image L1 energy rewards;
- `l1`: the recipe's goal-image energy (L1 between frozen random-encoder features of the rendered 64 px frame
  and of the goal image): what a perfect predictor would give the shipped planner (slow: every sampled step
  is rendered); `--patch 8` reads the frames as 8 x 8 tokens instead of the recipe's 4 x 4.

With `--fidelity WM [WM ...]` it measures instead how well learned world models stand in for the simulator
(a model that predicts states, as `wm/pusht-relative`'s, is scored on its own energy: see `state_fidelity`):
from states along the goal actions' path (steps 0, 3, 6, 9), 63 uniformly random action sequences of 3 steps
and the goal's own next 3 actions are scored by the image L1 twice, on the true frames (rendered and encoded by
the model's encoder) and on the model's predictions: the rank correlation of the two scorings, how many of the
true 8 best the model also ranks in its 8 best, and where each puts the goal's own sequence (rank 0 = best).

    python benchmarks/bench_wm_pusht.py --episodes 20 --horizon 3 --energy block
    python benchmarks/bench_wm_pusht.py --episodes 10 --fidelity runs/pusht/wm.safetensors
    python benchmarks/bench_wm_pusht.py --episodes 12 --fidelity P/wm.safetensors   # wm/pusht-relative's model
    python benchmarks/bench_wm_pusht.py --episodes 12 --fidelity P/wm.safetensors --state-weights 0.3,0.3,1,1,1,1
    python benchmarks/bench_wm_pusht.py --episodes 20 --horizon 6 --samples 128 --iterations 4 --energy block+agent
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _snapshot(inner) -> tuple:
    a, b = inner.agent, inner.block
    return (tuple(a.position), tuple(a.velocity), tuple(b.position), float(b.angle), tuple(b.velocity),
            float(b.angular_velocity))


def _restore(inner, s: tuple) -> None:
    a, b = inner.agent, inner.block
    a.position, a.velocity = s[0], s[1]
    b.position, b.angle, b.velocity, b.angular_velocity = s[2], s[3], s[4], s[5]


def _pose(inner) -> np.ndarray:
    return np.array([*inner.block.position, inner.block.angle, *inner.agent.position], np.float64)  # (5,)


def _pose_energy(poses: np.ndarray, goal: np.ndarray, with_agent: bool) -> np.ndarray:
    """poses [S, 5] (block x, y, angle, agent x, y) against goal [5] -> [S], in success-threshold units."""
    gap = np.abs((poses[:, 2] - goal[2] + np.pi) % (2 * np.pi) - np.pi)
    e = np.linalg.norm(poses[:, :2] - goal[:2], axis=1) / 20.0 + gap / (np.pi / 9)
    return e + np.linalg.norm(poses[:, 3:] - goal[3:], axis=1) / 100.0 if with_agent else e


def _encoder(patch: int):
    """The recipe's frozen random encoder (vit_tiny 96 x 2, seed 0, 64 px frames), with `patch` px patches."""
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.config.wm import WMEncoderConfig
    from vjepa_cli.models.frozen import load_frozen_encoder

    m = ModelConfig(arch="vit_tiny", embed_dim=96, depth=2, num_heads=4, patch_size=patch, tubelet_size=2,
                    num_frames=2, img_size=64, pos_embed="sincos")
    return load_frozen_encoder(WMEncoderConfig(path="", model=m, seed=0), "cpu")


def plan_true_sim(episodes: int, seed: int, horizon: int, samples: int, iterations: int, topk: int,
                  energy: str, max_steps: int, patch: int = 16) -> dict:
    import torch

    from vjepa_cli.config.plan import CEMConfig
    from vjepa_cli.envs.gym import make_gym_env
    from vjepa_cli.models.frozen import encode_frames
    from vjepa_cli.plan.base import energy_l1
    from vjepa_cli.plan.cem import cem_plan

    env = make_gym_env("gym_pusht/PushT-v0", size=64, goal_steps=12, goal_policy="scripted")
    inner, enc = env._inner, None
    if energy == "l1":
        enc = _encoder(patch)
    low, high = np.asarray(env.spec.action_low), np.asarray(env.spec.action_high)
    cfg = CEMConfig(low=env.spec.action_low, high=env.spec.action_high, horizon=horizon, samples=samples,
                    topk=topk, iterations=iterations, momentum_mean=0.1, momentum_std=0.1)
    wins, dists, steps, ms = 0, [], [], []

    def rollout(state, acts):  # acts (S, H, 2) -> (S, H, 5) true poses, or (S, H, N, D) features of true frames
        out = []
        for seq in acts.numpy():
            _restore(inner, state)
            for a in seq:
                inner.step(np.clip(a, low, high))
                out.append(env.render() if enc is not None else _pose(inner))
        _restore(inner, state)
        if enc is None:
            return torch.from_numpy(np.stack(out)).view(acts.shape[0], acts.shape[1], 5)
        z = encode_frames(enc, np.stack(out))
        return z.view(acts.shape[0], acts.shape[1], *z.shape[1:])

    def energy_fn(pred, goal):  # (S, H, ...) -> (S,)
        if enc is not None:
            return energy_l1(pred, goal)
        return torch.from_numpy(_pose_energy(pred[:, -1].numpy(), goal.numpy(), energy == "block+agent"))

    try:
        for i in range(episodes):
            env.reset(np.random.default_rng([seed, i]))
            goal_img, goal_state = env.goal_image(), env._goal_state
            for a in env._goal_actions:  # the goal's agent position: replay, read, reset
                inner.step(a)
            z_goal = torch.from_numpy(_pose(inner)) if enc is None else encode_frames(enc, goal_img[None])[0]
            env.reset(np.random.default_rng([seed, i]))
            assert np.allclose(env._goal_state, goal_state)
            g, prev, n = torch.Generator().manual_seed(i), None, 0
            while not env.success() and n < max_steps:
                init = None if prev is None else torch.cat([prev[1:], prev[-1:]])
                t0 = time.perf_counter()
                prev = cem_plan(rollout, _snapshot(inner), z_goal, cfg, g, init_mean=init, energy_fn=energy_fn).actions
                ms.append((time.perf_counter() - t0) * 1e3)
                env.step(prev[0].numpy())
                n += 1
            wins += bool(env.success())
            dists.append(env.distance())
            steps.append(n)
    finally:
        env.close()
    return {"episodes": episodes, "seed": seed, "energy": energy, "horizon": horizon, "samples": samples,
            "iterations": iterations, "topk": topk, "max_steps": max_steps, "patch": patch if enc else None,
            "success": wins / max(episodes, 1), "final_block_distance_px": float(np.mean(dists)),
            "steps": float(np.mean(steps)), "plan_ms_per_action": float(np.median(ms)) if ms else 0.0}


def fidelity(path: str, episodes: int, seed: int, samples: int = 64, horizon: int = 3,
             state_weights: tuple[float, ...] | None = None) -> dict:
    """How a world model's L1 energies of candidate sequences rank against the true simulator's (see above)."""
    import torch

    from vjepa_cli.envs.gym import make_gym_env
    from vjepa_cli.models.world_model import load_world_model
    from vjepa_cli.plan.base import energy_l1

    wm = load_world_model(path)
    if wm.predictor.cfg.state_dim:
        if not wm.predictor.cfg.predict_states or wm.state_head is None:
            raise SystemExit(f"{path}: --fidelity covers image energies and models that predict states and probe them")
        return state_fidelity(wm, path, episodes, seed, samples, horizon, state_weights)
    env = make_gym_env("gym_pusht/PushT-v0", size=64, goal_steps=12, goal_policy="scripted")
    inner, low, high = env._inner, np.asarray(env.spec.action_low), np.asarray(env.spec.action_high)
    rho, overlap, rank_true, rank_model = [], [], [], []
    try:
        for i in range(episodes):
            rng = np.random.default_rng([seed, i])
            env.reset(rng)
            z_goal, goal_acts = wm.encode(env.goal_image()[None])[0], list(env._goal_actions)
            cand_rng = np.random.default_rng([seed, i, 1])
            for t in range(len(goal_acts)):
                if t % 3 == 0 and t + horizon <= len(goal_acts):
                    acts = cand_rng.uniform(low, high, (samples, horizon, len(low))).astype(np.float32)
                    acts[0] = np.stack(goal_acts[t:t + horizon])  # the goal's own next actions
                    state, frame, frames = _snapshot(inner), env.render(), []
                    for seq in acts:
                        _restore(inner, state)
                        for a in seq:
                            inner.step(a)
                            frames.append(env.render())
                    _restore(inner, state)
                    z_true = wm.encode(np.stack(frames)).view(samples, horizon, *z_goal.shape)
                    with torch.no_grad():
                        z_pred = wm.rollout(wm.encode(frame[None])[0], torch.from_numpy(acts))
                    e_true, e_pred = energy_l1(z_true, z_goal).numpy(), energy_l1(z_pred, z_goal).numpy()
                    rt, rp = np.argsort(np.argsort(e_true)), np.argsort(np.argsort(e_pred))
                    rho.append(float(np.corrcoef(rt, rp)[0, 1]))
                    overlap.append(len(set(np.argsort(e_true)[:8]) & set(np.argsort(e_pred)[:8])) / 8)
                    rank_true.append(int(rt[0]))
                    rank_model.append(int(rp[0]))
                env.step(goal_acts[t])
    finally:
        env.close()
    return {"model": path, "episodes": episodes, "states": len(rho), "spearman_true_vs_model": float(np.mean(rho)),
            "top8_overlap": float(np.mean(overlap)), "goal_actions_rank_true": float(np.median(rank_true)),
            "goal_actions_rank_model": float(np.median(rank_model))}


def state_fidelity(wm, path: str, episodes: int, seed: int, samples: int = 64, horizon: int = 3,
                   state_weights: tuple[float, ...] | None = None) -> dict:
    """For a model that predicts states (`wm/pusht-relative`, on `vjepa/PushTRelative-v0`): from states along the
    goal path (t = 1, 4, 7: two frames of context), the goal's own next actions and samples - 1 random sequences
    scored three ways: the planning energy (the standardised predicted states' distance to the goal image's probed
    state, reduced over the horizon as the model's planner does: `plan.<method>.energy`) on the model's predictions, the same energy on the true states, and the task's
    own distance (block pose to the goal's, in success units) at the end. Rank correlations between the three.
    `state_weights`: the energy's per-entry weights (None = the model's `plan.state_weights`)."""
    import torch

    from vjepa_cli.envs.pusht_relative import ENV_ID
    from vjepa_cli.envs.registry import make_env
    from vjepa_cli.plan.base import over_horizon

    env = make_env(f"gym:{ENV_ID}", size=64, goal_steps=12, goal_policy="scripted")
    inner, low, high = env._inner, np.asarray(env.spec.action_low), np.asarray(env.spec.action_high)
    head, dims = wm.state_head, tuple(wm.predictor.cfg.state_dims)
    mode = getattr(wm.plan, wm.plan.method).energy  # as the model's planner reduces the horizon
    sw = wm.plan.state_weights if state_weights is None else state_weights
    w = torch.tensor(sw, dtype=torch.float32) if sw else None
    ranks = lambda e: np.argsort(np.argsort(e))  # noqa: E731
    rows: dict[str, list[float]] = {k: [] for k in ("model_vs_true_states", "model_vs_task", "true_states_vs_task",
                                                     "goal_rank_model", "goal_rank_true_states", "goal_rank_task")}
    try:
        for i in range(episodes):
            env.reset(np.random.default_rng([seed, i]))
            z_goal, goal = wm.encode(env.goal_image()[None])[0], env._goal_state
            goal_acts = [np.asarray(a, np.float32) for a in env._goal_actions]
            frames, states = [env.render()], [env.state()]
            for t in range(len(goal_acts)):
                if t % 3 == 1 and t + horizon <= len(goal_acts):
                    acts = np.random.default_rng([seed, i, t]).uniform(low, high, (samples, horizon, len(low)))
                    acts = acts.astype(np.float32)
                    acts[0] = np.stack(goal_acts[t:t + horizon])
                    snap, true_states, task = _snapshot(inner), [], []
                    for seq in acts:
                        _restore(inner, snap)
                        visited = []
                        for a in seq:
                            env.step(a)
                            visited.append(env.state())  # (S,)
                        true_states.append(visited)
                        task.append(env.task.distance(env.task_state(), goal))
                    _restore(inner, snap)
                    ctx = wm.encode(np.stack(frames[t - 1:t + 1]))[None].expand(samples, -1, -1, -1)
                    prev = torch.from_numpy(goal_acts[t - 1])[None, None].expand(samples, 1, -1)
                    s_ctx = torch.tensor(np.stack(states[t - 1:t + 1]), dtype=torch.float32)[None].expand(samples, -1, -1)
                    with torch.no_grad():
                        _, pred = wm.predictor.rollout(ctx, torch.cat([prev, torch.from_numpy(acts)], 1), s_ctx,
                                                       return_states=True)
                        d_model = head.goal_gap(head.standardise(pred[:, -horizon:], dims), z_goal, w)  # (S, H)
                        e_model = over_horizon(d_model, mode).numpy()
                        true = torch.tensor(np.array(true_states), dtype=torch.float32)  # (S, H, S_dim)
                        e_true = over_horizon(head.goal_gap(head.standardise(true), z_goal, w), mode).numpy()
                    rm, rt, rk = ranks(e_model), ranks(e_true), ranks(np.array(task))
                    rows["model_vs_true_states"].append(float(np.corrcoef(rm, rt)[0, 1]))
                    rows["model_vs_task"].append(float(np.corrcoef(rm, rk)[0, 1]))
                    rows["true_states_vs_task"].append(float(np.corrcoef(rt, rk)[0, 1]))
                    rows["goal_rank_model"].append(rm[0])
                    rows["goal_rank_true_states"].append(rt[0])
                    rows["goal_rank_task"].append(rk[0])
                frames.append(env.step(goal_acts[t]))
                states.append(env.state())
    finally:
        env.close()
    return {"model": path, "episodes": episodes, "states": len(rows["goal_rank_model"]), "energy": mode,
            "state_weights": list(sw) or "all 1",
            **{f"spearman_{k}": float(np.mean(v)) for k, v in rows.items() if "rank" not in k},
            **{k: float(np.median(v)) for k, v in rows.items() if "rank" in k}}


def _report(row: dict) -> None:
    """A table of the row's values, then the row as JSON."""
    for k, v in row.items():
        print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")
    print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="episode i uses rng [seed, i], as `wm eval --seed`")
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--topk", type=int, default=8)
    ap.add_argument("--energy", choices=["block", "block+agent", "l1"], default="block")
    ap.add_argument("--max-steps", type=int, default=30, help="the recipe's plan.max_steps")
    ap.add_argument("--patch", type=int, default=16, help="encoder patch size of --energy l1 (16: the recipe's 4 x 4 tokens)")
    ap.add_argument("--fidelity", nargs="+", metavar="WM", help="rank candidate sequences by these world models "
                    "against the true simulator instead of planning")
    ap.add_argument("--state-weights", type=lambda t: tuple(float(x) for x in t.split(",")), default=None,
                    help="with --fidelity: the state energy's per-entry weights, comma-separated (default: the model's)")
    args = ap.parse_args()
    if args.fidelity:
        for path in args.fidelity:
            _report(fidelity(path, args.episodes, args.seed, state_weights=args.state_weights))
        return
    _report(plan_true_sim(args.episodes, args.seed, args.horizon, args.samples, args.iterations, args.topk,
                          args.energy, args.max_steps, args.patch))


if __name__ == "__main__":
    main()
