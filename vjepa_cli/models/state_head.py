"""A learned state probe on frozen features: s(z) for the recorded state of the frame (e.g. a reacher's joint
angles as cos/sin), trained by regression on the episodes' states (`vjepa_cli.train.wm_heads`).

Planning uses it as a goal-conditioned distance: the goal image's probed state against the probed state of
the predicted frame (`vjepa_cli.eval.wm_methods`). Where a thin object overlaps none of the goal's patches the
image L1 is flat; the probed state still says how far away it is. The head outputs the *standardised* state
(each dimension centred and divided by its spread in the training episodes, kept in the config), so the
distance weighs the dimensions alike; `decode` gives the state in its own units."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from vjepa_cli.models.layers import TokenMLP, init_fan_in


@dataclass(frozen=True)
class StateHeadConfig:
    num_tokens: int  # N patch tokens per frame
    embed_dim: int  # D token width
    dims: tuple[int, ...]  # indices into the episodes' state vector that the head predicts (K of them)
    mean: tuple[float, ...]  # (K,) per-dimension mean of those states in the training episodes
    std: tuple[float, ...]  # (K,) per-dimension spread (> 0)
    proj: int = 8  # channels per token before flattening
    hidden: int = 128  # MLP hidden width
    members: int = 1  # probes trained apart and averaged (an ensemble: less of each one's own error)

    def __post_init__(self):
        if not self.dims or len(self.mean) != len(self.dims) or len(self.std) != len(self.dims):
            raise ValueError("a state head needs dims, and a mean and std for each")
        if self.members < 1:
            raise ValueError("a state head needs at least 1 member")
        if min(self.std) <= 0:
            raise ValueError("state std must be > 0")


class StateHead(nn.Module):
    """Features [..., N, D] -> standardised state [..., K], the mean of `cfg.members` probes (`body` and `more`)."""

    def __init__(self, cfg: StateHeadConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.body = TokenMLP(cfg.num_tokens, cfg.embed_dim, len(cfg.dims), cfg.proj, cfg.hidden)
        self.more = nn.ModuleList(TokenMLP(cfg.num_tokens, cfg.embed_dim, len(cfg.dims), cfg.proj, cfg.hidden)
                                  for _ in range(cfg.members - 1))  # the ensemble's other members
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32), persistent=False)
        init_fan_in(self, generator)

    @classmethod
    def ensemble(cls, members: list[StateHead]) -> StateHead:
        """One head averaging single-member heads of one config (their bodies copied; frozen, in eval mode)."""
        head = cls(replace(members[0].cfg, members=len(members)), generator=torch.Generator())  # overwritten below
        for slot, member in zip([head.body, *head.more], members, strict=True):
            slot.load_state_dict(member.body.state_dict())
        return head.eval().requires_grad_(False)

    def forward(self, z: Tensor) -> Tensor:
        lead, flat = z.shape[:-2], z.reshape(-1, *z.shape[-2:])  # (M, N, D)
        out = self.body(flat)  # (M, K)
        if len(self.more):
            out = torch.stack([out, *(m(flat) for m in self.more)]).mean(0)
        return out.reshape(*lead, len(self.cfg.dims))  # (..., K)

    def decode(self, z: Tensor) -> Tensor:
        """Features [..., N, D] -> the state in its own units [..., K]."""
        return self(z) * self.std + self.mean

    def pick(self, states: Tensor, entries: tuple[int, ...] = ()) -> Tensor:
        """Recorded (or predicted) state vectors [..., S] -> this head's dims, in their own units [..., K].
        `entries`: which entries of the recorded vector `states` holds, in order (() = all of it)."""
        if entries and any(d not in entries for d in self.cfg.dims):
            raise ValueError(f"the state probe reads entries {list(self.cfg.dims)}, the states hold {list(entries)}")
        pos = [entries.index(d) for d in self.cfg.dims] if entries else list(self.cfg.dims)
        return states[..., pos]

    def standardise(self, states: Tensor, entries: tuple[int, ...] = ()) -> Tensor:
        """As `pick`, standardised like the head's output [..., K]."""
        return (self.pick(states, entries) - self.mean) / self.std

    @staticmethod
    def gap(probed: Tensor, goal_state: Tensor, weights: Tensor | None = None) -> Tensor:
        """Euclidean distance between standardised states probed [..., K] and a goal's standardised state [K]
        -> [...]; `weights` [K] scale each entry's gap first (None = all 1)."""
        gap = probed - goal_state  # (..., K)
        return (gap if weights is None else gap * weights).norm(dim=-1)

    def goal_gap(self, probed: Tensor, goal: Tensor, weights: Tensor | None = None) -> Tensor:
        """`gap` to the goal features' probed state (goal [N, D])."""
        return self.gap(probed, self(goal.unsqueeze(0))[0], weights)

    def distance(self, pred: Tensor, goal: Tensor) -> Tensor:
        """Euclidean distance between probed states, standardised: pred [..., N, D], goal [N, D] -> [...]."""
        return self.goal_gap(self(pred), goal)
