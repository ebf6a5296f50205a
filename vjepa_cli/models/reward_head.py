"""A learned reward on frozen features: r(z) for the frame reached after an action, trained by regression on
the environment's recorded rewards (`vjepa_cli.train.wm_heads`), usable as a planning objective on predicted
features (alone or blended with the goal-image energy; see `vjepa_cli.plan.base.rollout_energy`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vjepa_cli.models.layers import TokenMLP, init_fan_in


@dataclass(frozen=True)
class RewardHeadConfig:
    num_tokens: int  # N patch tokens per frame
    embed_dim: int  # D token width
    proj: int = 8  # channels per token before flattening
    hidden: int = 128  # MLP hidden width


class RewardHead(nn.Module):
    """Features [..., N, D] -> predicted reward [...]."""

    def __init__(self, cfg: RewardHeadConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.body = TokenMLP(cfg.num_tokens, cfg.embed_dim, 1, cfg.proj, cfg.hidden)
        init_fan_in(self, generator)

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-2]
        return self.body(z.reshape(-1, *z.shape[-2:])).reshape(lead)  # (...,)
