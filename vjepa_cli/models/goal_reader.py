"""A goal reader: the state a goal image shows (e.g. PushT's agent and block pose), read from its pixels by a small
convolutional network trained on the collection's probe resets (`vjepa_cli.train.wm_heads.train_goal_reader`).

Planning with a state distance (`plan.state_weight`) compares the predicted states with the goal image's state.
The state probe reads that from the encoder's patch features; a world model on 64 px frames in 16 px patches has
4 x 4 of them, and PushT's pusher (a dot 4 px across) sits inside one: the probe read held-out goal frames' agent
to a median 33 px (block 14.5 px, 11.4 degrees), this reader to 5 px (block 7 px, 5 degrees). It reads each
goal once per episode (`plan.goal_state_from: reader`), so it costs nothing per planned action.

Input frames are resized to `size` (bilinear, antialiased, as the encoder's are) and given two coordinate
channels (x and y in [-1, 1]), so the convolutions know where they look (Liu et al., "CoordConv", 2018). The
output is the state standardised by the training states' mean and spread; `decode` gives it in its own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class GoalReaderConfig:
    dims: tuple[int, ...]  # indices into the episodes' state vector that the reader reads (K of them)
    mean: tuple[float, ...]  # (K,) per-dimension mean of those states in the training frames
    std: tuple[float, ...]  # (K,) per-dimension spread (> 0)
    size: int = 64  # frames are resized to size x size (a multiple of 8)
    channels: tuple[int, int, int] = (16, 32, 64)  # widths of the three stride-2 convolutions
    hidden: int = 256  # MLP hidden width

    def __post_init__(self):
        if not self.dims or len(self.mean) != len(self.dims) or len(self.std) != len(self.dims):
            raise ValueError("a goal reader needs dims, and a mean and std for each")
        if min(self.std) <= 0:
            raise ValueError("goal reader std must be > 0")
        if self.size < 8 or self.size % 8 or len(self.channels) != 3 or min(self.channels) < 1 or self.hidden < 1:
            raise ValueError("goal reader: size a multiple of 8, three channel widths and a hidden width >= 1")


class GoalReader(nn.Module):
    """uint8 frames [B, H, W, 3] -> standardised state [B, K]."""

    def __init__(self, cfg: GoalReaderConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        self.convs = nn.Sequential(nn.Conv2d(5, c1, 5, 2, 2), nn.GELU(), nn.Conv2d(c1, c2, 3, 2, 1), nn.GELU(),
                                   nn.Conv2d(c2, c3, 3, 2, 1), nn.GELU())  # (B, 5, S, S) -> (B, c3, S/8, S/8)
        self.fc1 = nn.Linear(c3 * (cfg.size // 8) ** 2, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, len(cfg.dims))
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32), persistent=False)
        for m in self.modules():  # trunc_normal(1 / sqrt(fan_in)) weights, zero biases, from `generator`
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = m.weight[0].numel() ** -0.5
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std, generator=generator)
                nn.init.zeros_(m.bias)

    def prepare(self, frames: Tensor) -> Tensor:
        """uint8 [B, H, W, 3] -> float [B, 5, S, S]: RGB in [0, 1] at `size`, then the x and y coordinates."""
        x = frames.to(self.fc1.weight.device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        s = self.cfg.size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        ramp = torch.linspace(-1.0, 1.0, s, device=x.device)
        xs, ys = ramp.view(1, 1, 1, s).expand(len(x), 1, s, s), ramp.view(1, 1, s, 1).expand(len(x), 1, s, s)
        return torch.cat([x, xs, ys], 1)

    def forward(self, frames: Tensor) -> Tensor:
        h = self.convs(self.prepare(frames)).flatten(1)  # (B, c3 * (S/8)^2)
        return self.fc2(F.gelu(self.fc1(h)))  # (B, K)

    @torch.no_grad()
    def read(self, image: np.ndarray) -> Tensor:
        """One uint8 image [H, W, 3] -> its state in its own units [K]."""
        return (self(torch.from_numpy(np.ascontiguousarray(image))[None]) * self.std + self.mean)[0]
