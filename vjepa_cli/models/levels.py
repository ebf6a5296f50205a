"""Chosen levels of a V-JEPA 2.1 encoder's hierarchical output (Mur-Labadia et al., 2026).

A 2.1 encoder has four levels (blocks `cfg.levels`, each normed by its own `norms_block[k]`); its hierarchical
output concatenates them along the width, shallow to deep, (B, N, L*D). `extract --levels`, `viz` and the
multi-level probe read a subset of it: the official multilevel evaluation reads the same normed outputs
(`out_layers` = the level blocks). Level k here is the k-th level (0-based), not a block index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vjepa_cli.config.extract import Levels
from vjepa_cli.errors import VjepaError


def resolve_levels(encoder: torch.nn.Module, levels: Levels | Sequence[int]) -> tuple[int, ...]:
    """The 0-based level numbers `levels` means for `encoder` (() stays ()). Raises a one-line VjepaError for an
    encoder without levels (V-JEPA 1/2) or a level out of range."""
    if levels == () or levels is None:
        return ()
    have = tuple(getattr(encoder, "levels", ()) or ())
    if not have:
        raise VjepaError("this model has no hierarchical levels (only V-JEPA 2.1 models do): leave out --levels")
    if levels == "all":
        return tuple(range(len(have)))
    out = tuple(int(v) for v in levels)
    bad = [v for v in out if not 0 <= v < len(have)]
    if bad:
        raise VjepaError(f"level {bad[0]} is out of range: this model has {len(have)} levels, 0-{len(have) - 1} "
                         f"(blocks {', '.join(map(str, have))})")
    return out


def level_blocks(encoder: torch.nn.Module, levels: Sequence[int]) -> list[int]:
    """The (0-based) encoder blocks the levels are read after."""
    return [int(encoder.levels[k]) for k in levels]


def take_levels(hier: Tensor, levels: Sequence[int], n_levels: int) -> Tensor:
    """(..., L*D) hierarchical features -> (..., len(levels)*D): the chosen levels, in the order given."""
    d = hier.shape[-1] // n_levels
    parts = hier.unflatten(-1, (n_levels, d))  # (..., L, D)
    return parts[..., list(levels), :].flatten(-2)


def encode_levels(encoder: torch.nn.Module, x: Tensor, levels: Sequence[int], masks=None) -> Tensor:
    """`encoder(x)` (B, N, D) when `levels` is empty, else the chosen levels (B, N, len(levels)*D)."""
    if not levels:
        return encoder(x, masks=masks)
    hier = encoder(x, masks=masks, hierarchical=True)  # (B, N, L*D)
    return take_levels(hier, levels, len(encoder.levels))
