"""Token masks for V-JEPA pretraining: multi-block 3D, random tube and causal "future" masks.

V-JEPA: Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from Video" (2024),
section 3.2 (multi-block masking: short-range 8 x 0.15 and long-range 2 x 0.7 blocks spanning the whole clip);
V-JEPA 2: Assran et al. (2025) keeps the same masks. The causal mask follows the intuitive-physics evaluation
(Garrido et al. 2025): the context is the first time steps, the targets are the rest.

A token id is `t * H' * W' + h * W' + w` on the token grid (T', H', W'). Each mask pair is a context list (the
tokens the encoder sees, ascending) and a target list (the tokens the predictor predicts, ascending), each a
LongTensor (B, K) with one K for the whole batch. All randomness comes from a `torch.Generator` seeded from
(seed, step), so the masks of a step do not depend on the number of loader workers or on the call order, and a
resumed run sees the masks the uninterrupted run saw. Generation is vectorised over the batch (well under the
official ~2 ms per batch).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from vjepa_cli.config.mask import BlockMaskConfig, MaskConfig

Grid = tuple[int, int, int]
MaskPair = tuple[Tensor, Tensor]  # (context (B, Kc), target (B, Kt))

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant, spreads (seed, step) over the 63-bit seed space


class MaskedBatch(NamedTuple):
    """What the collator hands the training loop."""

    clips: Tensor  # uint8 (B, C, T, H, W)
    context_masks: list[Tensor]  # one LongTensor (B, Kc_i) per mask pair
    target_masks: list[Tensor]  # one LongTensor (B, Kt_i) per mask pair
    labels: Tensor  # int64 (B,), -1 where unknown
    failures: list  # (path, reason) of videos replaced by samples of this batch


def mask_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator whose state depends only on (seed, step)."""
    g = torch.Generator(device=device)
    g.manual_seed(((int(seed) * _MIX) ^ (int(step) + 0x5851F42D)) % (2**63 - 1))
    return g


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + torch.rand(1, generator=g).item() * (hi - lo)


def block_size(cfg: BlockMaskConfig, grid: Grid, g: torch.Generator) -> tuple[int, int, int]:
    """(t, h, w) of the blocks of one generator for one batch (the official `_sample_block_size`)."""
    T, H, W = grid
    t = max(1, int(T * _uniform(*cfg.temporal_scale, g)))
    keep = int(H * W * _uniform(*cfg.spatial_scale, g))
    ar = _uniform(*cfg.aspect_ratio, g)
    h = min(H, int(round(math.sqrt(keep * ar))))
    w = min(W, int(round(math.sqrt(keep / ar))))
    return t, max(h, 1), max(w, 1)


def _first_ids(keep: Tensor, k: int) -> Tensor:
    """keep (B, N) bool -> (B, k): the k smallest ids per row where `keep` is True (every row has >= k)."""
    rows, ids = keep.nonzero(as_tuple=True)  # row-major, so ids ascend within each row
    counts = keep.sum(1)
    starts = torch.cumsum(counts, 0) - counts  # (B,)
    rank = torch.arange(len(ids), device=keep.device) - starts[rows]
    return ids[rank < k].view(keep.shape[0], k)


def split_masks(masked: Tensor, max_keep: int | None = None) -> MaskPair:
    """masked (B, N) bool -> (context ids (B, Kc), target ids (B, Kt)), ascending, cut to the batch minimum.

    Cutting every row to the shortest one drops each row's highest ids, as the official collator does.
    """
    n_tgt = masked.sum(1)
    kc = int((masked.shape[1] - n_tgt).min())
    kt = int(n_tgt.min())
    if max_keep is not None:
        kc = min(kc, max_keep)
    return _first_ids(~masked, kc), _first_ids(masked, kt)


def multiblock_map(cfg: BlockMaskConfig, grid: Grid, batch: int, g: torch.Generator,
                   max_tries: int = 100) -> Tensor:
    """(B, N) bool, True = target: `num_blocks` blocks of one size (drawn once) at random places per sample.

    Time steps at or after `max_temporal_keep * T'` are targets too; a sample whose context came out empty is
    redrawn (up to `max_tries` times).
    """
    T, H, W = grid
    t, h, w = block_size(cfg, grid, g)
    n = cfg.num_blocks
    keep_t = max(1, int(T * cfg.max_temporal_keep))
    tt, hh, ww = torch.arange(T), torch.arange(H), torch.arange(W)
    masked = torch.empty(batch, T * H * W, dtype=torch.bool)
    todo = torch.arange(batch)
    for _ in range(max_tries):
        k = len(todo)
        s0 = torch.randint(0, T - t + 1, (k, n, 1), generator=g)
        h0 = torch.randint(0, H - h + 1, (k, n, 1), generator=g)
        w0 = torch.randint(0, W - w + 1, (k, n, 1), generator=g)
        in_t = ((tt >= s0) & (tt < s0 + t)).float()  # (k, n, T)
        in_h = (hh >= h0) & (hh < h0 + h)  # (k, n, H)
        in_w = (ww >= w0) & (ww < w0 + w)  # (k, n, W)
        in_hw = (in_h.unsqueeze(-1) & in_w.unsqueeze(-2)).float().view(k, n, H * W)
        m = torch.bmm(in_t.transpose(1, 2), in_hw).view(k, T, H * W) > 0  # blocks covering each token
        m[:, keep_t:] = True
        m = m.view(k, -1)
        masked[todo] = m
        todo = todo[m.all(1)]  # samples left without context: draw again
        if len(todo) == 0:
            break
    else:
        raise ValueError(f"multi-block masks leave no context on grid {grid} after {max_tries} tries")
    return masked


def multiblock_masks(cfg: BlockMaskConfig, grid: Grid, batch: int, g: torch.Generator,
                     device: torch.device | str = "cpu", max_tries: int = 100) -> MaskPair:
    """One multi-block mask pair for a batch: context = unmasked tokens, target = masked tokens, both cut to
    the batch minimum (and the context to `max_keep`)."""
    ctx, tgt = split_masks(multiblock_map(cfg, grid, batch, g, max_tries), cfg.max_keep)
    return ctx.to(device), tgt.to(device)


def tube_masks(ratio: float, grid: Grid, batch: int, g: torch.Generator,
               device: torch.device | str = "cpu") -> MaskPair:
    """Random tube masks: the same `ratio` of spatial positions is masked in every time step."""
    T, H, W = grid
    hw = H * W
    keep = max(1, min(hw - 1, int(hw * (1 - ratio) + 1e-9)))  # +eps: 100 * (1 - 0.9) is 9.999...
    order = torch.rand(batch, hw, generator=g).argsort(dim=1)
    keep_sp = order[:, :keep].sort(dim=1).values  # (B, keep)
    drop_sp = order[:, keep:].sort(dim=1).values  # (B, hw - keep)
    offs = (torch.arange(T) * hw).view(1, T, 1)
    ctx = (offs + keep_sp.unsqueeze(1)).reshape(batch, -1)  # (B, T * keep), ascending
    tgt = (offs + drop_sp.unsqueeze(1)).reshape(batch, -1)
    return ctx.to(device), tgt.to(device)


def future_steps(num_steps: int, fraction: float) -> int:
    """Context time steps for a causal mask: `int(T' * fraction)`, at least 1 and at most T' - 1."""
    if num_steps < 2:
        raise ValueError(f"future masks need at least 2 time steps on the token grid, got {num_steps}")
    return min(num_steps - 1, max(1, int(num_steps * fraction)))


def future_masks(grid: Grid, context_steps: int, batch: int, device: torch.device | str = "cpu") -> MaskPair:
    """Causal masks: context = every token of the first `context_steps` time steps, targets = the rest."""
    T, H, W = grid
    if not 1 <= context_steps < T:
        raise ValueError(f"context_steps must be in [1, {T - 1}] for {T} time steps, got {context_steps}")
    n_ctx = context_steps * H * W
    ids = torch.arange(T * H * W, device=device)
    return ids[:n_ctx].expand(batch, -1).contiguous(), ids[n_ctx:].expand(batch, -1).contiguous()


def sample_masks(cfg: MaskConfig, grid: Grid, batch: int, g: torch.Generator,
                 device: torch.device | str = "cpu") -> tuple[list[Tensor], list[Tensor]]:
    """All mask pairs of one batch for `cfg.kind`: (context masks, target masks), `cfg.num_masks` of each."""
    pairs: list[MaskPair] = []
    if cfg.kind in ("multiblock", "mixed"):
        pairs += [multiblock_masks(b, grid, batch, g, device) for b in cfg.blocks]
    if cfg.kind == "tube":
        pairs.append(tube_masks(cfg.tube_ratio, grid, batch, g, device))
    if cfg.kind in ("future", "mixed"):
        pairs.append(future_masks(grid, future_steps(grid[0], cfg.future_context), batch, device))
    return [p[0] for p in pairs], [p[1] for p in pairs]


class MaskCollator:
    """DataLoader `collate_fn`: stacks the clips and draws the batch's masks from (seed, step).

    A sample is a dict with "clip" (uint8 (C, T, H, W)), "step" (the global step of its batch, -1 if unknown)
    and optionally "label" (int) and "failures" (list of (path, reason)). Batches whose step is unknown draw
    from a per-collator counter instead (reproducible only with a single worker).

    With `world_size` > 1 the masks are drawn for the global batch (batch x world_size, cut to its minimum
    lengths) and rank `rank` keeps its rows, so N processes see exactly the masks one process would see for the
    same global batch.
    """

    def __init__(self, cfg: MaskConfig, grid: Grid, seed: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
        self.cfg, self.grid, self.seed = cfg, tuple(int(v) for v in grid), int(seed)
        self.rank, self.world_size = rank, world_size
        self._fallback = 0
        if cfg.kind in ("future", "mixed"):
            future_steps(self.grid[0], cfg.future_context)  # fail early on a 1-step grid

    def masks(self, step: int, batch: int) -> tuple[list[Tensor], list[Tensor]]:
        """The masks of global step `step` for this rank's `batch` clips."""
        ctx, tgt = sample_masks(self.cfg, self.grid, batch * self.world_size, mask_generator(self.seed, step))
        if self.world_size == 1:
            return ctx, tgt
        rows = slice(self.rank * batch, (self.rank + 1) * batch)
        return [m[rows] for m in ctx], [m[rows] for m in tgt]

    def __call__(self, samples: list[dict[str, Any]]) -> MaskedBatch:
        clips = torch.stack([s["clip"] for s in samples])  # (B, C, T, H, W)
        step = int(samples[0].get("step", -1))
        if step < 0:
            step = -(self._fallback + 2)  # distinct from every real step
            self._fallback += 1
        ctx, tgt = self.masks(step, len(samples))
        labels = torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long)
        failures = [f for s in samples for f in (s.get("failures") or [])]
        return MaskedBatch(clips, ctx, tgt, labels, failures)


def apply_masks(x: Tensor, masks: list[Tensor]) -> Tensor:
    """Gather the tokens of each mask and stack along batch: x (B, N, D), masks [(B, K)] -> (len(masks) * B, K, D).

    The gather index is an expanded view of the (B, K) ids, so no (B, K, D) index tensor is materialised.
    """
    d = x.shape[-1]
    out = [torch.gather(x, 1, m.unsqueeze(-1).expand(-1, -1, d)) for m in masks]
    return out[0] if len(out) == 1 else torch.cat(out, dim=0)
