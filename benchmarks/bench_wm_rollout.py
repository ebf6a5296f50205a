"""How far a world model's predictions are from the truth, read through its state probe.

For every window of the given episodes (recorded by `vjepa wm collect`, ideally ones the model never saw), the
predictor rolls out `--horizon` steps from `--context` observed frames with the recorded actions, and the state
head (`heads.state`) reads each predicted frame. The error is the distance between the probed and the recorded
state (the head's `state_dims`, in the state's own units), or with `--fingertip` the Reacher-v5 fingertip
distance in metres computed from the probed joint angles (state dims 0-3 = cos q1, cos q2, sin q1, sin q2).
Row 0 is the probe on the observed frame itself (its own error); rows 1..H the predictions. With a model that
reads states, planning holds the last observed state over the horizon; `held` measures that, `true` feeds the
recorded future states instead (what a perfect state forecast would add). With a model that predicts states
(`predictor.predict_states`), rollouts feed its own predicted states forward: `fed` is the probe on those
predictions, and `own` the predicted states themselves (what `plan.state_from: predictor` plans on).

    python benchmarks/bench_wm_rollout.py --model R/wm.safetensors --episodes EPS --fingertip
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vjepa_cli.data.episodes import read_episode
from vjepa_cli.models.ac_predictor import select_states
from vjepa_cli.models.world_model import load_world_model
from vjepa_cli.train.wm_heads import windows

REACHER_LINKS = (0.1, 0.11)  # Reacher-v5 link lengths (m), from its MuJoCo model


def fingertip(s: torch.Tensor) -> torch.Tensor:
    """Reacher-v5 states [..., >=4] (cos q1, cos q2, sin q1, sin q2, ...) -> fingertip xy [..., 2] in metres."""
    q1, q2 = torch.atan2(s[..., 2], s[..., 0]), torch.atan2(s[..., 3], s[..., 1])
    l1, l2 = REACHER_LINKS
    return torch.stack([l1 * q1.cos() + l2 * (q1 + q2).cos(), l1 * q1.sin() + l2 * (q1 + q2).sin()], -1)


@torch.no_grad()
def rollout_errors(model: str, episodes: Path, count: int, horizon: int, context: int,
                   tip: bool) -> dict[str, list[torch.Tensor]]:
    """{"held"|"true" or "fed"|"own": [errors at step 0..H]} over every window of the first `count` episodes."""
    wm = load_world_model(model)
    if wm.state_head is None:
        sys.exit(f"{model} has no state head: train it with --set heads.state=true")
    dims = list(wm.state_head.cfg.dims)
    pcfg = wm.predictor.cfg
    uses_states, predicts = bool(pcfg.state_dim), pcfg.predict_states
    modes = ("fed", "own") if predicts else ("held", "true") if uses_states else ("held",)
    errs: dict[str, list[list[torch.Tensor]]] = {m: [[] for _ in range(horizon + 1)] for m in modes}
    folders = sorted(p for p in episodes.iterdir() if (p / "episode.safetensors").is_file())[:count]
    if not folders:
        sys.exit(f"{episodes} holds no episodes: record some with `vjepa wm collect`")
    for folder in folders:
        ep = read_episode(folder)
        z = wm.encode(ep.frames)  # (T+1, N, D)
        s = torch.as_tensor(ep.states, dtype=torch.float32)  # (T+1, S)
        a = torch.as_tensor(ep.actions, dtype=torch.float32)  # (T, A)
        ts = list(range(context - 1, len(a) - horizon + 1))  # t = last context frame
        if not ts:
            continue
        ctx, act, states = windows(z, a, s, context, horizon, ts)  # states: (B, C + H, S)
        ctx, act = ctx.to(wm.device), act.to(wm.device)
        ref = states[:, context - 1:, dims]  # (B, H+1, K): the last context frame and the H predicted
        given = {"held": states[:, :context], "true": states[:, :context - 1 + horizon]}
        if predicts:  # its own states fed forward; `own` reads them back at the probe's dims
            pred, own = wm.predictor.rollout(ctx, act, select_states(pcfg, given["held"].to(wm.device)),
                                             return_states=True)  # (B, H, N, D), (B, H, S')
            preds = {"fed": pred}
        else:
            preds = {m: wm.predictor.rollout(ctx, act, select_states(pcfg, given[m].to(wm.device))
                                             if uses_states else None) for m in modes}  # (B, H, N, D) each
        readings = {}  # mode -> (B, H+1, K); step 0 is the probe on the observed frame in every row
        for m, pred in preds.items():
            frames = torch.cat([ctx[:, -1:], pred], 1)  # (B, H+1, N, D)
            readings[m] = wm.state_head.decode(frames.flatten(0, 1)).view(len(ts), horizon + 1, -1).cpu()
        if predicts:
            own = wm.state_head.pick(own, tuple(pcfg.state_dims)).cpu()  # (B, H, K)
            readings["own"] = torch.cat([readings["fed"][:, :1], own], 1)
        for m, probed in readings.items():
            for h in range(horizon + 1):
                e = (fingertip(probed[:, h]) - fingertip(ref[:, h])) if tip else probed[:, h] - ref[:, h]
                errs[m][h].append(e.norm(dim=-1))
    return {m: [torch.cat(x) for x in rows] for m, rows in errs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="world-model file with a state head")
    ap.add_argument("--episodes", required=True, type=Path, help="folder of episodes (vjepa wm collect)")
    ap.add_argument("--count", type=int, default=40, help="episodes to read")
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--context", type=int, default=2, help="observed frames each rollout starts from")
    ap.add_argument("--fingertip", action="store_true", help="Reacher-v5: error of the fingertip in metres")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    errs = rollout_errors(args.model, args.episodes, args.count, args.horizon, args.context, args.fingertip)
    unit = "m (fingertip)" if args.fingertip else "state units"
    rows = {m: [{"step": h, "median": float(e.median()), "p90": float(e.quantile(0.9)), "n": e.numel()}
                for h, e in enumerate(v)] for m, v in errs.items()}
    print(f"probed error of the predictions, {unit}; step 0 = the probe on the observed frame")
    first = next(iter(rows.values()))
    print("| future states | " + " | ".join(f"step {r['step']} median / p90" for r in first) + " |")
    print("|---|" + "---|" * len(first))
    for m, v in rows.items():
        print(f"| {m} | " + " | ".join(f"{r['median']:.4f} / {r['p90']:.4f}" for r in v) + " |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "unit": unit, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
