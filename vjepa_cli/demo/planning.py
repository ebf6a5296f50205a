"""The demo's planning stage: a reach2d world model on the demo's pretrained encoder and on its random init (same
architecture and seed), each planning toward goal images with CEM; success rates and one planned episode.

Both encoders are the ones the probe rows compare (`model.safetensors`, `random-init.safetensors`), so the stage
costs no extra pretraining: it collects reach2d episodes once, trains a small predictor on each frozen encoder's
features and runs closed-loop MPC on the same seeded episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# quick: the pipeline only; full: about 90 s of CPU (120 episodes, 300 steps and 12 eval episodes took 108 s on one
# thread, both encoders at 100 % and random actions at 0 %, docs/results.md)
QUICK = {"episodes": 12, "steps": 20, "eval_episodes": 2, "max_steps": 4}
FULL = {"episodes": 100, "steps": 250, "eval_episodes": 10, "max_steps": 30}


def _sets(size: dict, episodes: Path, encoder: Path, device: str | None) -> list[str]:
    steps = size["steps"]
    sets = [f"data.episodes={episodes}", f"encoder.path={encoder}", f"optim.steps={steps}",
            f"optim.warmup_steps={max(1, steps // 12)}", f"optim.anneal_steps={steps // 4}",
            f"checkpoint_every={steps}", f"log_every={max(1, steps // 4)}", f"plan.max_steps={size['max_steps']}"]
    return sets + ([f"device={device}"] if device else [])


def planning_rows(quick: bool, out: Path, encoders: dict[str, Path], seed: int, device: str | None,
                  tick: Callable[[str, int, int], None]) -> tuple[dict[str, float], dict]:
    """Train and evaluate one reach2d world model per encoder (name -> model file) in `out/wm-<name>`; the first
    encoder's eval draws `out/planned.png` (one planned episode, the goal last). Returns name -> success rate,
    and a summary (episodes, steps, the random-action baseline's success rate, seconds per encoder)."""
    import shutil

    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.wm import WMConfig
    from vjepa_cli.envs.collect import run_wm_collect
    from vjepa_cli.eval.wm import run_wm_eval
    from vjepa_cli.train.wm import run_wm_train

    size = QUICK if quick else FULL
    episodes = out / "wm-episodes"
    tick("planning", 0, len(encoders) + 1)  # collection, then one world model per encoder
    run_wm_collect("reach2d", size["episodes"], episodes, steps=24, size=64, seed=seed)
    tick("planning", 1, len(encoders) + 1)
    success, summary = {}, {"wm_episodes": size["episodes"], "wm_steps": size["steps"],
                            "wm_eval_episodes": size["eval_episodes"]}
    for i, (name, path) in enumerate(encoders.items()):
        cfg = load_recipe(WMConfig, "wm/reach2d", _sets(size, episodes, path, device) + [f"seed={seed}"])
        res = run_wm_train(cfg, out / f"wm-{name}")
        ev = run_wm_eval(res.model_path, "reach2d", episodes=size["eval_episodes"], seed=seed, device=device,
                         baselines=i == 0, out_dir=out / f"wm-{name}" / "eval", show=1)
        rows = {r.method: r for r in ev.rows}
        success[name] = ev.rows[0].success_rate
        if i == 0:
            shutil.copyfile(ev.png, out / "planned.png")
            summary["wm_random_actions"] = rows["random"].success_rate
        summary[f"wm_seconds_{name}"] = res.seconds
        tick("planning", i + 2, len(encoders) + 1)
    shutil.rmtree(episodes / "features", ignore_errors=True)  # the cached features are big and rebuilt on demand
    return success, summary
