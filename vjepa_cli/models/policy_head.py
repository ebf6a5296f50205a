"""A learned, goal-conditioned policy on frozen features (behaviour cloning): pi(z, z_goal) -> action within
the bounds, trained on the collected episodes with hindsight goals (a later frame of the same episode,
`vjepa_cli.train.wm_heads`). It is a `PolicyPrior` for MPC: it seeds the planner's mean and can blend into
the executed action (`plan.prior_weight`), the vision-language-action prior of V-JEPA 2-AC without language."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vjepa_cli.models.layers import TokenMLP, init_fan_in


@dataclass(frozen=True)
class PolicyHeadConfig:
    num_tokens: int  # N patch tokens per frame
    embed_dim: int  # D token width
    action_low: tuple[float, ...]  # (A,) bounds: the output is squashed into them
    action_high: tuple[float, ...]
    proj: int = 8  # channels per token before flattening
    hidden: int = 128  # MLP hidden width


class PolicyHead(nn.Module):
    """(features [B, N, D], goal features [B, N, D]) -> action [B, A] within the bounds."""

    def __init__(self, cfg: PolicyHeadConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        a = len(cfg.action_low)
        self.body = TokenMLP(2 * cfg.num_tokens, cfg.embed_dim, a, cfg.proj, cfg.hidden)
        self.register_buffer("low", torch.tensor(cfg.action_low, dtype=torch.float32), persistent=False)
        self.register_buffer("high", torch.tensor(cfg.action_high, dtype=torch.float32), persistent=False)
        init_fan_in(self, generator)

    def forward(self, z: Tensor, z_goal: Tensor) -> Tensor:
        u = torch.sigmoid(self.body(torch.cat([z, z_goal], dim=1)))  # (B, A) in (0, 1)
        return self.low + (self.high - self.low) * u
