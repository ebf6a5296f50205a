"""Why does planning fail on push2d? The goal-image energy (L1 between frozen-encoder features of a frame and of
the goal image), measured where the planner needs it, without any predictor:

1. along the scripted oracle's successful path: does the energy fall as the block nears its goal? (Spearman
   correlation of the energy with the block-goal distance and with the effector-goal distance);
2. a decoy test: "effector already where the goal image has it, block not moved" against "block on its goal,
   effector where it started": the fraction of episodes whose energy prefers the decoy (a planner following the
   energy then parks the effector and never pushes);
3. how much of the energy the block carries: energy of the goal image against the goal image with the block
   moved back to its start (the block's share) vs with the effector moved back (the effector's share).

Each for encoders of the recipe's architecture with 16 px patches (4 x 4 tokens at 64 px) and 8 px patches
(8 x 8 tokens), random (seed 0) or from a model file (--model, e.g. a V-JEPA pretraining run), and for push2d's
rendering as shipped (`current`: a lit block, a faint effector; the goal shows the effector where the push
starts) or as it was up to the diagnosis (`legacy`: the effector's strong cone over the frame, a bare block,
the goal's effector drawn on the target).

    python benchmarks/bench_wm_energy.py --episodes 50 --rendering current,legacy
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if np.std(ra) > 0 and np.std(rb) > 0 else float("nan")


def _encoder(patch: int, model: str | None):
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.config.wm import WMEncoderConfig
    from vjepa_cli.models.frozen import load_frozen_encoder

    m = ModelConfig(arch="vit_tiny", embed_dim=96, depth=2, num_heads=4, patch_size=patch, tubelet_size=2,
                    num_frames=2, img_size=64, pos_embed="sincos")
    return load_frozen_encoder(WMEncoderConfig(path=model or "", model=m, seed=0), "cpu")


def _env(rendering: str):
    """push2d as shipped, or drawn as before the diagnosis (same dynamics, goal effector on the target)."""
    from vjepa_cli.envs.push2d import Push2D

    if rendering == "current":
        return Push2D(size=64)
    env = Push2D(size=64, glow=0.9, light=0.6, block_glow=0.0, block_light=0.0, alpha=1.0)
    env.goal_agent = lambda: env.target.copy()  # the old goal image drew the effector on the target
    return env


def run(episodes: int, patch: int, model: str | None, rendering: str = "current") -> dict:
    from vjepa_cli.models.frozen import encode_frames

    enc = _encoder(patch, model)
    env = _env(rendering)
    corr_block, corr_agent, decoy_wins, block_share, agent_share, solved = [], [], 0, [], [], 0
    for i in range(episodes):
        env.reset(np.random.default_rng([0, i]))
        start_agent, start_block = env.agent.copy(), env.block.copy()
        goal = env.goal_image()
        goal_agent = env.goal_agent()
        frames, dblock, dagent = [env.render()], [env.distance()], [float(np.linalg.norm(env.agent - goal_agent))]
        for _ in range(40):
            env.step(env.oracle_action())
            frames.append(env.render())
            dblock.append(env.distance())
            dagent.append(float(np.linalg.norm(env.agent - goal_agent)))
            if env.success():
                break
        solved += env.success()
        decoy = env._image(goal_agent, start_block)  # effector at its goal place, block unmoved
        pushed = env._image(start_agent, env.target)  # block on the goal, effector where it started
        z = encode_frames(enc, np.stack([*frames, goal, decoy, pushed]))  # (T + 3, N, D)
        zg = z[len(frames)]
        e = (z[: len(frames)] - zg).abs().mean((1, 2)).numpy()
        corr_block.append(_spearman(e, dblock))
        corr_agent.append(_spearman(e, dagent))
        e_decoy, e_pushed = float((z[-2] - zg).abs().mean()), float((z[-1] - zg).abs().mean())
        decoy_wins += e_decoy < e_pushed
        total = float((z[0] - zg).abs().mean())
        block_share.append(e_decoy / total)  # only the block differs from the goal
        agent_share.append(e_pushed / total)  # only the effector differs
    return {"rendering": rendering, "patch": patch, "tokens": (64 // patch) ** 2, "encoder": model or "random (seed 0)",
            "episodes": episodes, "oracle_solved": solved / episodes,
            "spearman_energy_vs_block_distance": float(np.nanmean(corr_block)),
            "spearman_energy_vs_effector_distance": float(np.nanmean(corr_agent)),
            "decoy_preferred": decoy_wins / episodes,
            "energy_share_block": float(np.mean(block_share)), "energy_share_effector": float(np.mean(agent_share))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--model", default=None, help="model file for the encoder (default: random, seed 0)")
    ap.add_argument("--patches", default="16,8")
    ap.add_argument("--rendering", default="current", help="current and/or legacy, comma-separated")
    args = ap.parse_args()
    rows = [run(args.episodes, int(p), args.model, r) for r in args.rendering.split(",") for p in args.patches.split(",")]
    keys = ["rendering", "tokens", "spearman_energy_vs_block_distance", "spearman_energy_vs_effector_distance",
            "decoy_preferred", "energy_share_block", "energy_share_effector"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
