"""Per-method statistics of closed-loop planning episodes: success rate with a 95 % Wilson score interval,
final task distance, steps, planning time per action and plan confidence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vjepa_cli.plan.mpc import EpisodeLog


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson, JASA 1927): (low, high) in [0, 1]; z = 1.96 is
    the 95 % interval. Unlike p +- z sqrt(p (1 - p) / n) it stays inside [0, 1] and is not empty at 0 or n."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if successes == 0 else lo), (1.0 if successes == n else hi)  # exact ends, no rounding


@dataclass(frozen=True)
class MethodStats:
    method: str  # "world model (cem)", "random", "oracle", ...
    success_rate: float  # fraction of episodes solved
    final_distance: float  # mean task distance at the end
    steps: float  # mean actions per episode (to success, or the limit)
    plan_ms: float | None  # mean planning time per action, milliseconds (None for baselines)
    confidence: float | None = None  # mean plan confidence (planned methods only)
    success_low: float = 0.0  # 95 % Wilson interval of the success rate
    success_high: float = 1.0
    episodes: int = 0  # episodes behind the row


def method_stats(name: str, logs: list[EpisodeLog], planned: bool) -> MethodStats:
    """One table row from the episode logs of one method."""
    secs = [s for lg in logs for s in lg.plan_seconds]
    conf = [c for lg in logs for c in lg.confidences]
    wins = sum(bool(lg.success) for lg in logs)
    lo, hi = wilson_interval(wins, len(logs))
    return MethodStats(name, wins / max(len(logs), 1), float(np.mean([lg.distances[-1] for lg in logs])),
                       float(np.mean([lg.steps for lg in logs])),
                       1000 * float(np.mean(secs)) if planned and secs else None,
                       float(np.mean(conf)) if planned and conf else None, lo, hi, len(logs))
