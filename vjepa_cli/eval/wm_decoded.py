"""`vjepa wm plan / eval --decoder`: the imagined rollout of the chosen plan, decoded, next to what happened.

- plan: start image, the plan's imagined frames (the predictor's rollout decoded), the goal image; under them the
  L1 distance of each imagined step's features to the goal's (what CEM minimised at the last step).
- eval: the first evaluation episode (same seed as `wm eval`'s): the plan chosen at its start, executed open loop
  in the simulator; the frames that happened, those frames' features decoded (what the decoder can show), and
  the imagined ones, with the L1 between imagined and actual features per step under them.

The decoder must be trained on the world model's encoder: `vjepa decoder train --model wm.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_cli.infer.decoded import GREY, Prediction, decode_features, write_picture
from vjepa_cli.models.world_model import WorldModel


def open_wm_decoder(wm: WorldModel, decoder_path: str | Path, model_path: str | Path):
    """The decoder, checked against the world model's encoder (one line when it reads another encoder)."""
    from vjepa_cli.infer.render_prediction import check_fits, open_decoder

    dec = open_decoder(decoder_path, wm.device)
    width = int(wm.encoder.config.resolve().embed_dim)
    check_fits(dec, wm.encoder.config, width, Path(decoder_path), model_path)
    return dec


def _decode_steps(decoder, feats: torch.Tensor) -> np.ndarray:
    """Per-frame features `(H, N, D)` -> uint8 frames `(H, S, S, 3)` (each step's first tubelet frame)."""
    return decode_features(decoder, feats, 1)[0][:, 0]


def _sized(frames: list[np.ndarray], size: int) -> np.ndarray:
    """uint8 frames -> `(T, size, size, 3)` (bilinear when the simulator draws at another size)."""
    x = np.stack(frames)
    if x.shape[1:3] == (size, size):
        return x
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def plan_prediction(wm: WorldModel, decoder, start: np.ndarray, goal: np.ndarray, actions: torch.Tensor) -> Prediction:
    """The picture of one plan: start, imagined steps, goal."""
    z = wm.encode(np.stack([start, goal]))  # (2, N, D)
    imagined = wm.rollout(z[0], actions[None].to(wm.device))[0]  # (H, N, D)
    h, size = len(imagined), decoder.cfg.img_size
    real = _sized([start, goal], size)
    grey = np.full_like(real[0], GREY)
    frames = np.stack([real[0], *[grey] * h, real[1]])  # (H + 2, S, S, 3)
    dec = np.concatenate([_decode_steps(decoder, imagined), grey[None]])  # (H + 1, S, S, 3)
    to_goal = (imagined - z[1]).abs().mean((1, 2)).cpu().numpy()
    return Prediction(frames, 1, None, dec[None], to_goal, 1, "plan: start, imagined steps, goal",
                      ("imagined",), "to goal (L1)", ["start", *[f"+{k + 1}" for k in range(h)], "goal"])


def run_plan_picture(wm: WorldModel, model_path: str | Path, decoder_path: str | Path, start: np.ndarray,
                     goal: np.ndarray, actions: list[list[float]], render: str | Path) -> Path:
    """`wm plan --decoder`: write the plan's picture to `render` (.png or .mp4)."""
    dec = open_wm_decoder(wm, decoder_path, model_path)
    return write_picture(render, [plan_prediction(wm, dec, start, goal, torch.tensor(actions, dtype=torch.float32))])


def run_eval_picture(wm: WorldModel, model_path: str | Path, decoder_path: str | Path, env_name: str, seed: int,
                     sets: list[str] | tuple[str, ...], render: str | Path) -> Path:
    """`wm eval --decoder`: plan from the first episode's start (seed `[seed, 0]`, as `wm eval`), execute the plan
    open loop, and draw what happened next to what was imagined."""
    from vjepa_cli.envs.registry import make_env
    from vjepa_cli.eval.wm import plan_settings
    from vjepa_cli.plan.cem import CEMPlanner

    dec = open_wm_decoder(wm, decoder_path, model_path)
    plan = plan_settings(wm, sets)
    env = make_env(env_name, size=wm.meta.get("wm_config", {}).get("data", {}).get("size", 64))
    env.reset(np.random.default_rng([seed, 0]))
    start, goal = env.render(), env.goal_image()
    z = wm.encode(np.stack([start, goal]))  # (2, N, D)
    planner = CEMPlanner(wm.rollout, plan.cem_for(wm.action_low, wm.action_high))
    res = planner.plan(z[0], z[1], torch.Generator(device=wm.device).manual_seed(seed))
    lo, hi = np.asarray(wm.action_low, np.float32), np.asarray(wm.action_high, np.float32)
    happened = [env.step(np.clip(a, lo, hi)) for a in res.actions.cpu().numpy()]
    imagined = wm.rollout(z[0], res.actions[None])[0]  # (H, N, D)
    actual = wm.encode(np.stack(happened))  # (H, N, D)
    h, size = len(happened), dec.cfg.img_size
    frames = _sized([start, *happened, goal], size)  # (H + 2, S, S, 3)
    grey = np.full_like(frames[0], GREY)[None]
    pad = lambda x: np.concatenate([x, grey])  # noqa: E731  the goal column of decoded rows
    p = Prediction(frames, 1, pad(_decode_steps(dec, actual)), pad(_decode_steps(dec, imagined))[None],
                   (imagined - actual).abs().mean((1, 2)).cpu().numpy(), 1,
                   f"{env_name} episode 0: the first plan executed open loop", ("imagined",),
                   "imagined vs real", ["start", *[f"+{k + 1}" for k in range(h)], "goal"])
    return write_picture(render, [p])
