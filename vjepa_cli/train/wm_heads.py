"""Heads on frozen world-model features, trained after the predictor from the same cached features:

- reward: regression (MSE) of the recorded reward r_t on the features of the frame the action led to, z_{t+1};
- policy: goal-conditioned behaviour cloning with hindsight goals: from (z_t, z_{t+k}), k uniform in
  1..goal_horizon (clipped to the episode), regress (MSE) the action a_t that was taken;
- state: regression (MSE) of the recorded state s_t[dims], standardised, on the features of its frame z_t and
  (with `state_rollout` K) on the predictor's k-step predictions of it, k = 1..K, from `context` recorded frames
  and the recorded actions: planning probes predicted features, which are blurrier than encoded ones; with
  `state_members` M, M probes fitted apart (own initialisation and batches) whose outputs are averaged;
- goal reader: regression (MSE) of the same states, standardised, on the pixels of the collection's probe resets
  (their first and goal frames), AdamW with a cosine schedule for `reader_steps`.

Both draw every batch from a torch.Generator seeded with the recipe's seed, so the heads are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from vjepa_cli.config.wm import WMHeadsConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.tensors import load_tensors
from vjepa_cli.models.goal_reader import GoalReader, GoalReaderConfig
from vjepa_cli.models.policy_head import PolicyHead, PolicyHeadConfig
from vjepa_cli.models.reward_head import RewardHead, RewardHeadConfig
from vjepa_cli.models.state_head import StateHead, StateHeadConfig
from vjepa_cli.train.wm_data import WMData

MEMBER_SEED_STRIDE = 1000  # member k of a state-probe ensemble draws from seed + 2 + k * this


Progress = Callable[[int, dict], None]  # (step, {"loss": ...}) every PROGRESS_EVERY steps and at the last
PROGRESS_EVERY = 50


def _fit(module: torch.nn.Module, loss_fn: Callable[[torch.Generator], torch.Tensor], cfg: WMHeadsConfig,
         gen: torch.Generator, on_step: Progress | None = None) -> list[float]:
    """AdamW for `cfg.steps` steps at `cfg.lr`, constant or cosine-decayed to 0; -> the loss of every step."""
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=1e-4)
    module.train()
    losses = []
    for step in range(cfg.steps):
        if cfg.lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / cfg.steps))
        loss = loss_fn(gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step and (step % PROGRESS_EVERY == 0 or step == cfg.steps - 1):
            on_step(step, {"loss": losses[-1]})
    module.eval().requires_grad_(False)
    return losses


def mean_spread(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and spread of states s [M, K]; a constant dimension gets a spread of 1 (kept unscaled)."""
    mu, sd = s.mean(0), s.std(0)
    return mu, torch.where(sd > 1e-6, sd, torch.ones_like(sd))


def check_heads(data: WMData, cfg: WMHeadsConfig) -> None:
    """Fail before any training when the episodes lack what a wanted head learns from."""
    if cfg.reward and any(r is None for r in data.rewards):
        raise VjepaError("heads.reward needs rewards in the episodes", "collect them again with this version")
    if cfg.goal_reader and data.probe_path is None:
        raise VjepaError("heads.goal_reader learns from the collection's probe resets, and these episodes have none",
                         "set data.probe_resets (e.g. 10000) and collect again")
    if not (cfg.state or cfg.goal_reader):
        return
    name = "heads.state" if cfg.state else "heads.goal_reader"
    if data.state_dim == 0 or any(s is None for s in data.states):
        raise VjepaError(f"{name} needs states in the episodes", "collect them from an environment with states")
    check_state_dims(data, "heads.state_dims", cfg.state_dims)


def check_state_dims(data: WMData, name: str, dims: tuple[int, ...]) -> None:
    """Fail with the episodes' state names when a recipe's `name` (a list of state entries) is out of range."""
    if dims and (max(dims) >= data.state_dim or min(dims) < 0):
        raise VjepaError(f"{name} {list(dims)} out of range: the episodes' states have "
                         f"{data.state_dim} dims ({', '.join(data.state_names)})",
                         f"use indices 0..{data.state_dim - 1}")


def train_reward_head(data: WMData, cfg: WMHeadsConfig, seed: int,
                      on_step: Progress | None = None) -> tuple[RewardHead, list[float]]:
    """Fit r_t ~ R(z_{t+1}) on every recorded transition."""
    check_heads(data, WMHeadsConfig(reward=True))
    z = torch.cat([f[1:] for f in data.features]).float()  # (M, N, D): the frame after each action
    r = torch.cat([torch.as_tensor(x, dtype=torch.float32) for x in data.rewards])  # (M,)
    mu, sd = float(r.mean()), float(r.std()) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    head = RewardHead(RewardHeadConfig(z.shape[1], z.shape[2], cfg.proj, cfg.hidden), generator=gen)

    def loss(g: torch.Generator) -> torch.Tensor:
        i = torch.randint(len(z), (cfg.batch_size,), generator=g)
        return ((head(z[i]) - (r[i] - mu) / sd) ** 2).mean()  # standardised targets

    losses = _fit(head, loss, cfg, gen, on_step)
    with torch.no_grad():  # fold the standardisation into the last layer: the head outputs rewards
        fc2 = head.body.mlp.fc2
        fc2.weight.mul_(sd)
        fc2.bias.mul_(sd).add_(mu)
    return head, losses


def train_policy_head(data: WMData, cfg: WMHeadsConfig, seed: int,
                      on_step: Progress | None = None) -> tuple[PolicyHead, list[float]]:
    """Fit a_t ~ pi(z_t, z_{t+k}) with hindsight goals k in 1..goal_horizon."""
    lengths = torch.tensor([len(a) for a in data.actions])  # actions per episode
    offsets = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), lengths + 1]), 0)  # frame offsets
    z = torch.cat(list(data.features)).float()  # (sum T_i, N, D)
    acts = torch.cat([torch.as_tensor(a, dtype=torch.float32) for a in data.actions])  # (sum T_i - 1, A)
    ep_of = torch.repeat_interleave(torch.arange(len(lengths)), lengths)  # episode of each transition
    t_of = torch.cat([torch.arange(n) for n in lengths.tolist()])  # its time index
    low, high = torch.tensor(data.action_low), torch.tensor(data.action_high)
    gen = torch.Generator().manual_seed(seed + 1)
    head = PolicyHead(PolicyHeadConfig(z.shape[1], z.shape[2], tuple(data.action_low), tuple(data.action_high),
                                       cfg.proj, cfg.hidden), generator=gen)

    def loss(g: torch.Generator) -> torch.Tensor:
        i = torch.randint(len(acts), (cfg.batch_size,), generator=g)  # transitions
        e, t = ep_of[i], t_of[i]
        k = torch.randint(1, cfg.goal_horizon + 1, (cfg.batch_size,), generator=g)
        goal_t = torch.minimum(t + k, lengths[e])  # a later frame of the same episode
        pred = head(z[offsets[e] + t], z[offsets[e] + goal_t])  # (B, A)
        return (((pred - acts[i]) / (high - low)) ** 2).mean()  # in units of the bound range

    return head, _fit(head, loss, cfg, gen, on_step)


# (context [B, T0, N, D], actions [B, T0 - 1 + H, A], context states [B, T0, S]) -> predictions [B, H, N, D]
Rollout = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def windows(z: torch.Tensor, a: torch.Tensor, s: torch.Tensor, context: int, steps: int,
            starts: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One episode's windows, each ending its context at frame t in `starts`: features z [T+1, N, D], actions
    a [T, A], states s [T+1, S] -> (context [B, T0, N, D], actions [B, T0 - 1 + steps, A], the recorded states of
    the context and the `steps` frames after it [B, T0 + steps, S])."""
    ctx = torch.stack([z[t - context + 1:t + 1] for t in starts]).float()
    acts = torch.stack([a[t - context + 1:t + steps] for t in starts])
    states = torch.stack([s[t - context + 1:t + steps + 1] for t in starts])
    return ctx, acts, states


@torch.no_grad()
def rollout_samples(data: WMData, rollout: Rollout, context: int, steps: int,
                    batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The predictor's 1..`steps`-step predictions from every `context`-frame start of every episode, with the
    recorded states of the frames they predict -> (features [M', N, D], states [M', S])."""
    zs, ss = [], []
    for z, a, s in zip(data.features, data.actions, data.states, strict=True):
        starts = list(range(context - 1, len(a) - steps + 1))  # the last context frame; `steps` actions after it
        a = torch.as_tensor(a, dtype=torch.float32)
        s = torch.as_tensor(s, dtype=torch.float32)
        for chunk in [starts[i:i + batch] for i in range(0, len(starts), batch)]:
            ctx, acts, states = windows(z, a, s, context, steps, chunk)
            pred = rollout(ctx, acts, states[:, :context]).cpu()  # (B, steps, N, D)
            zs.append(pred.flatten(0, 1))
            ss.append(states[:, context:].flatten(0, 1))  # (B * steps, S)
    return torch.cat(zs), torch.cat(ss)


def train_state_head(data: WMData, cfg: WMHeadsConfig, seed: int, rollout: Rollout | None = None,
                     context: int = 1, on_step: Progress | None = None) -> tuple[StateHead, list[float]]:
    """Fit s_t[dims] ~ S(z_t) on every recorded frame (dims = `cfg.state_dims`, all when empty) and the
    collection's extra resets, and with `cfg.state_rollout` > 0 on the `rollout`'s predictions from `context`
    frames too."""
    check_heads(data, WMHeadsConfig(state=True, state_dims=cfg.state_dims))
    dims = tuple(cfg.state_dims) or tuple(range(data.state_dim))
    z = torch.cat(list(data.features)).float()  # (M, N, D), every frame
    s = torch.cat([torch.as_tensor(x, dtype=torch.float32) for x in data.states])  # (M, S)
    if data.probe_features is not None:  # the collection's extra resets (`data.probe_resets`)
        z = torch.cat([z, data.probe_features.float()])
        s = torch.cat([s, torch.as_tensor(data.probe_states, dtype=torch.float32)])
    if cfg.state_rollout and rollout is not None:
        zp, sp = rollout_samples(data, rollout, context, cfg.state_rollout)
        z, s = torch.cat([z, zp.float()]), torch.cat([s, sp])
    s = s[:, list(dims)]  # (M, K)
    mu, sd = mean_spread(s)
    y = (s - mu) / sd
    one = StateHeadConfig(z.shape[1], z.shape[2], dims, tuple(mu.tolist()), tuple(sd.tolist()), cfg.proj, cfg.hidden)
    members, losses = [], []
    for k in range(cfg.state_members):  # member 0 is the single probe of state_members=1, to the bit
        gen = torch.Generator().manual_seed(seed + 2 + MEMBER_SEED_STRIDE * k)
        member = StateHead(one, generator=gen)

        def loss(g: torch.Generator, member: StateHead = member) -> torch.Tensor:
            i = torch.randint(len(z), (cfg.batch_size,), generator=g)
            return ((member(z[i]) - y[i]) ** 2).mean()

        members.append(member)
        done = k * cfg.steps  # the members' steps count on one after another
        losses.append(_fit(member, loss, cfg, gen, on_step and (lambda i, info, done=done: on_step(done + i, info))))
    if len(members) == 1:
        return members[0], losses[0]
    return StateHead.ensemble(members), [float(np.mean(x)) for x in zip(*losses, strict=True)]


def train_goal_reader(data: WMData, cfg: WMHeadsConfig, seed: int,
                      on_step: Progress | None = None) -> tuple[GoalReader, list[float]]:
    """Fit s[dims] ~ G(frame) on the probe resets' frames (dims = `cfg.state_dims`, all when empty)."""
    check_heads(data, WMHeadsConfig(goal_reader=True, state_dims=cfg.state_dims))
    raw, _ = load_tensors(data.probe_path)
    frames = raw["frames"]  # (M, H, W, 3) uint8, converted a batch at a time
    dims = tuple(cfg.state_dims) or tuple(range(data.state_dim))
    s = raw["states"].float()[:, list(dims)]  # (M, K)
    mu, sd = mean_spread(s)
    y = (s - mu) / sd
    gen = torch.Generator().manual_seed(seed + 3)
    size = max(8, frames.shape[1] // 8 * 8)  # the frames' size, down to a multiple of 8
    reader = GoalReader(GoalReaderConfig(dims, tuple(mu.tolist()), tuple(sd.tolist()), size=size), generator=gen)

    def loss(g: torch.Generator) -> torch.Tensor:
        i = torch.randint(len(frames), (cfg.reader_batch,), generator=g)
        return ((reader(frames[i]) - y[i]) ** 2).mean()

    fit = WMHeadsConfig(steps=cfg.reader_steps, lr=cfg.reader_lr, lr_schedule="cosine")
    return reader, _fit(reader, loss, fit, gen, on_step)
