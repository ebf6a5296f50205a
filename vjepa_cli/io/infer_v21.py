"""The V-JEPA 2.1 fields of a `ModelConfig`, read from official-named state dicts.

V-JEPA 2.1: Mur-Labadia et al., "V-JEPA 2.1: Unlocking Dense Features in Video Self-Supervised Learning" (2026).
A 2.1 encoder is recognised by its keys: `norms_block.{k}` (per-level LayerNorms instead of `norm`),
`patch_embed_img.proj` (the image embedder, temporal kernel 1), `img_mod_embed` / `video_mod_embed`. What the
weights cannot show comes from the official code: interleaved RoPE frequencies, encoder positions rescaled onto
the 16-patch pretraining grid, predictor positions left raw (as the hub builds the released predictors), four
levels at the official blocks, and the hub's input size (384 px, 64 frames).
"""

from __future__ import annotations

from vjepa_cli.config.model import OFFICIAL_LEVELS, default_levels, rope_pretrain_grid
from vjepa_cli.errors import VjepaError

V21_MARKERS = ("norms_block.", "patch_embed_img.", "img_mod_embed", "video_mod_embed")
V21_SIZE = (384, 64)  # img_size, num_frames the official hub builds every 2.1 release with
V21_LEVELS = 4  # the official encoder always has four per-level norms


def is_v21(encoder: dict) -> bool:
    """Whether an official-named encoder state dict is a V-JEPA 2.1 one."""
    return any(k.startswith(V21_MARKERS) for k in encoder)


def v21_encoder_fields(encoder: dict, depth: int, patch: int, notes: list[str]) -> dict:
    """The 2.1 encoder fields. The image embedder and the modality vectors count as present when any of
    their tensors is (so a missing half is reported by the strict check, not silently dropped)."""
    try:
        levels = default_levels(depth, V21_LEVELS)
    except ValueError:
        raise VjepaError(f"a V-JEPA 2.1 encoder has {V21_LEVELS} levels, which {depth} blocks cannot hold") from None
    if depth not in OFFICIAL_LEVELS:
        notes.append(f"levels after blocks {', '.join(map(str, levels))}: evenly spaced (the official code defines "
                     f"them for depths {', '.join(map(str, OFFICIAL_LEVELS))} only)")
    image = any(k.startswith("patch_embed_img.") for k in encoder)
    modality = "img_mod_embed" in encoder or "video_mod_embed" in encoder
    if not image:
        notes.append("no image embedder (patch_embed_img): one-frame inputs are repeated to a tubelet")
    if not modality:
        notes.append("no modality vectors (img_mod_embed / video_mod_embed)")
    return dict(rope_interleaved=True, rope_interp_grid=rope_pretrain_grid(patch), image_embed=image,
                modality_embed=modality, levels=levels)


def v21_predictor_fields(predictor: dict, dim: int) -> dict:
    """The 2.1 predictor fields: levels read (from `predictor_embed.0`, the multi-level input), width of each
    predicted level (from `predictor_proj`), and whether there is a context head."""
    levels = 1
    first = predictor.get("predictor_embed.0.weight")
    if first is not None:
        if first.ndim != 2 or first.shape[1] % dim:
            raise VjepaError(f"predictor_embed.0.weight has shape {tuple(first.shape)}: it does not read whole "
                             f"{dim}-wide encoder levels")
        levels = int(first.shape[1]) // dim
    proj = predictor.get("predictor_proj.weight")
    out = int(proj.shape[0]) if proj is not None and proj.ndim == 2 else levels * dim
    if out % levels:
        raise VjepaError(f"predictor_proj.weight predicts {out} channels, not a whole width for {levels} levels")
    context = any(k.startswith("predictor_proj_context.") for k in predictor)
    return dict(pred_levels=levels, pred_out_dim=None if out == levels * dim else out // levels,
                pred_context_head=context)


def predictor_embed_out(predictor: dict):
    """The weight of the predictor's input projection to its width: `predictor_embed` (one level) or its last
    Linear `predictor_embed.2` (2.1 multi-level), or None."""
    return predictor.get("predictor_embed.weight", predictor.get("predictor_embed.2.weight"))
