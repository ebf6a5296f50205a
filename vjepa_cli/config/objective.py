"""The V-JEPA 2.1 training objective (Mur-Labadia et al., 2026; official `app/vjepa_2_1/train.py`), as options of
a pretraining recipe. Every option is off by default, so a V-JEPA 1/2 recipe trains exactly as before.

- `hierarchical_targets`: the EMA target encoder's hierarchical output (every level, concatenated shallow to deep),
  each D-wide level layer-normalised on its own without affine parameters; the context encoder feeds the predictor
  its hierarchical output and the predictor predicts every level (deep supervision with one L1 mean).
- `predict_context`: the dense context loss: the predictor's context head also predicts the context tokens, each
  weighted by 1 / sqrt(d_i), d_i = distance on the (t, h, w) token grid to the nearest target token of the same
  sample; loss = L_pred + lambda(step) * L_ctx, lambda ramped in by `lambda_warmup`.
- `images`: image batches (T = 1, the image embedder, 1-frame masks, modality "image", `lambda_img`) mixed with the
  video batches: on one process every step (`mix: mixed`, loss weights 1 - rank_ratio / rank_ratio) or on a share
  `rank_ratio` of the steps (`mix: alternate`); across processes the official rank split (the first
  int(world * rank_ratio) ranks read images, the others video).

Example recipe section::

    objective:
      hierarchical_targets: true
      predict_context: true
      lambda_warmup: [15000, 30000]
      images:
        data: {datasets: [data/in1k/train.csv], frames_per_clip: 1, crop_size: 256}
        batch_size: 144
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa_cli.config.data import DataConfig
from vjepa_cli.config.mask import BlockMaskConfig, MaskConfig


def _image_masks() -> MaskConfig:
    """The official image masks: one generator of 10 blocks of spatial scale 0.15, aspect ratio 0.75-1.5."""
    return MaskConfig(kind="multiblock", blocks=(BlockMaskConfig(num_blocks=10, spatial_scale=(0.15, 0.15)),))


def _image_data() -> DataConfig:
    return DataConfig(frames_per_clip=1)


@dataclass(frozen=True)
class ImagesConfig:
    """Image batches through the image path of a V-JEPA 2.1 model (`model.image_embed`)."""

    data: DataConfig = field(default_factory=_image_data)  # images: manifests of image files (read as one-frame
    # videos) or synth videos (one random frame each); frames_per_clip must be 1
    mask: MaskConfig = field(default_factory=_image_masks)  # masks on the (1, H', W') image grid (official 10 x 0.15)
    batch_size: int = 16  # images per device per micro-batch (the official image batch is 3x the video batch)
    mix: Literal["mixed", "alternate"] = "mixed"  # one process: an image and a video batch every step (loss
    # weights rank_ratio / 1 - rank_ratio), or image batches on a share rank_ratio of the steps
    rank_ratio: float = 0.5  # share of images: several processes give the first int(world * rank_ratio) ranks images

    def __post_init__(self):
        if self.data.frames_per_clip != 1:
            raise ValueError("images.data.frames_per_clip must be 1 (an image is a one-frame clip)")
        if self.mask.kind in ("future", "mixed"):
            raise ValueError("images.mask.kind must be multiblock or tube (an image has one time step)")
        if self.batch_size < 1:
            raise ValueError("images.batch_size must be >= 1")
        if not 0.0 < self.rank_ratio < 1.0:
            raise ValueError("images.rank_ratio must be in (0, 1)")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The V-JEPA 2.1 objective; all off = the V-JEPA 1/2 loss."""

    hierarchical_targets: bool = False  # targets and predictions cover every encoder level, each level's
    # D-slice layer-normalised (needs model.levels and model.pred_levels = their number)
    predict_context: bool = False  # dense context loss through the predictor's context head (model.pred_context_head)
    weight_distance_loss: bool = True  # context weights 1 / sqrt(distance to the nearest target token); false = 1
    lambda_vid: float = 0.5  # context-loss weight on video batches (official 0.5)
    lambda_img: float = 0.5  # context-loss weight on image batches (official 0.5)
    lambda_progressive: bool = True  # lambda = 0 before lambda_warmup[0], linear ramp, then held; false = constant
    lambda_warmup: tuple[int, int] = (15000, 30000)  # (start, end) steps of the ramp (official 15k, 30k)
    images: ImagesConfig | None = None  # image batches mixed with the video batches (None = video only)

    def __post_init__(self):
        if min(self.lambda_vid, self.lambda_img) < 0:
            raise ValueError("lambda_vid and lambda_img must be >= 0")
        start, end = self.lambda_warmup
        if not 0 <= start <= end:
            raise ValueError("lambda_warmup must be [start, end] with 0 <= start <= end")

    @property
    def active(self) -> bool:
        """Whether anything differs from the V-JEPA 1/2 objective."""
        return self.hierarchical_targets or self.predict_context or self.images is not None


def check_objective(obj: ObjectiveConfig, model) -> None:
    """Refuse an objective the model cannot train (`model` a `ModelConfig`); ValueError naming the fix."""
    n_levels = len(model.levels)
    if obj.hierarchical_targets:
        if n_levels < 2 or model.pred_levels != n_levels:
            raise ValueError("objective.hierarchical_targets needs model.levels (2 or more) and model.pred_levels "
                             f"equal to their number (have {n_levels} levels, pred_levels {model.pred_levels})")
        if model.pred_out_dim not in (None, model.resolved_sizes()[0]):
            raise ValueError("objective.hierarchical_targets predicts the encoder's own levels: leave "
                             "model.pred_out_dim unset")
    elif model.pred_levels > 1:
        raise ValueError("model.pred_levels > 1 predicts every level: set objective.hierarchical_targets: true")
    if model.pred_out_dim not in (None, model.resolved_sizes()[0]):
        raise ValueError("model.pred_out_dim (a distilled predictor's width) cannot be trained against this encoder's "
                         "targets: leave it unset")
    if obj.predict_context and not model.pred_context_head:
        raise ValueError("objective.predict_context needs model.pred_context_head: true")
    if obj.images is not None and not model.image_embed:
        raise ValueError("objective.images needs model.image_embed: true (the image path of a V-JEPA 2.1 model)")
