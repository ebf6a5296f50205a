"""`Pretrain21Trainer`: pretraining under the V-JEPA 2.1 objective (`vjepa_cli.config.objective`), with image
batches through the image path mixed with the video batches.

Which modality a step reads (`step_modalities`):
- one process, `images.mix: mixed`: a video batch and an image batch every step, loss (1 - r) L_video + r L_image
  with r = `images.rank_ratio` (what the official rank split averages to over its ranks);
- one process, `images.mix: alternate`: an image batch on a share r of the steps (step s is an image step when
  floor((s + 1) r) > floor(s r)), a video batch on the others;
- several processes: the official rank split: ranks 0 .. int(world r) - 1 read images, the others video; each video
  rank's batch is `batch_size * world / video ranks` (as upstream), each image rank's `images.batch_size`.
Every batch is still a pure function of (seed, step): a `PlannedSampler` skips the steps that are not its modality's,
so `--resume` continues exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from vjepa_cli.config.data import DataConfig
from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.objective import ImagesConfig
from vjepa_cli.data.masks import MaskCollator
from vjepa_cli.data.sampler import LoaderIter, StepBatchSampler, build_pretrain_loader
from vjepa_cli.data.transforms import normalize_clips
from vjepa_cli.errors import VjepaError
from vjepa_cli.train.dense_loss import context_lambda
from vjepa_cli.train.jepa21 import Jepa21Model, target_features21
from vjepa_cli.train.pretrainer import PretrainTrainer
from vjepa_cli.train.sharding import grad_sync, reshard

IMAGE_SEED_OFFSET = 1_000_003  # the image stream's seed = seed + this (its own clips and masks)


def image_ranks(world: int, rank_ratio: float) -> int:
    """How many of `world` processes read images (the first ones): int(world * rank_ratio), refused when it leaves a
    modality without a rank."""
    n = int(world * rank_ratio)
    if not 1 <= n <= world - 1:
        raise VjepaError(f"images.rank_ratio {rank_ratio} with {world} processes gives {n} image ranks and "
                         f"{world - n} video ranks; each modality needs at least one",
                         hint="change images.rank_ratio or the number of processes")
    return n


def step_modalities(images: ImagesConfig | None, step: int, rank: int = 0, world: int = 1) -> list[tuple[str, float]]:
    """The (modality, loss weight) batches that `rank` trains on at optimizer `step`."""
    if images is None:
        return [("video", 1.0)]
    r = images.rank_ratio
    if world > 1:
        return [("image" if rank < image_ranks(world, r) else "video", 1.0)]
    if images.mix == "mixed":
        return [("video", 1.0 - r), ("image", r)]
    return [("image" if int((step + 1) * r) > int(step * r) else "video", 1.0)]


class PlannedSampler:
    """A `StepBatchSampler` that yields only the micro-batches of the steps its modality owns (`owns(step)`), each
    keyed by its real global step, so a modality's batches do not depend on the other's."""

    def __init__(self, base: StepBatchSampler, owns: Callable[[int], bool], micro_batches: int):
        self.base, self.owns, self.micro = base, owns, micro_batches

    @property
    def num_steps(self) -> int | None:
        return self.base.num_steps

    @num_steps.setter
    def num_steps(self, value: int | None) -> None:
        self.base.num_steps = value

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        b = self.base
        while b.num_steps is None or b.step < b.num_steps:
            s = b.step
            b.step += 1
            if self.owns(s // self.micro):
                yield b.batch(s)

    def state_dict(self) -> dict:
        return self.base.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state)


class MixedSampler:
    """The samplers of every stream of a rank, positioned together (what the `Trainer` saves and restores)."""

    def __init__(self, samplers: list[PlannedSampler]):
        self.samplers = samplers

    @property
    def num_steps(self) -> int | None:
        return self.samplers[0].num_steps

    @num_steps.setter
    def num_steps(self, value: int | None) -> None:
        for s in self.samplers:
            s.num_steps = value

    def load_state_dict(self, state: dict) -> None:
        for s in self.samplers:
            s.load_state_dict(state)


class Stream(NamedTuple):
    """One modality's batches on one rank."""

    data: DataConfig
    mask: MaskConfig
    batch: int  # samples per micro-batch on this rank
    grid: tuple[int, int, int]  # token grid (T', H', W') of a sample
    seed: int
    rank: int  # this rank's index among the ranks reading this modality
    world: int  # ranks reading this modality


class MixedBatch(NamedTuple):
    parts: list[tuple[str, float, object]]  # (modality, loss weight, MaskedBatch)
    failures: list  # bad reads of every part


class MixedIter:
    """Next micro-batch: one batch of each (modality, weight) that `plan()` names for the current step."""

    def __init__(self, loaders: dict[str, torch.utils.data.DataLoader], plan: Callable[[], list[tuple[str, float]]]):
        self.its = {m: LoaderIter(loader) for m, loader in loaders.items()}
        self.plan = plan

    def __iter__(self) -> MixedIter:
        return self

    def __next__(self) -> MixedBatch:
        parts = [(m, w, next(self.its[m])) for m, w in self.plan()]
        return MixedBatch(parts, [f for _, _, b in parts for f in b.failures])

    def close(self) -> None:
        for it in self.its.values():
            it.close()


class Pretrain21Trainer(PretrainTrainer):
    """`PretrainTrainer` with the 2.1 objective: hierarchical targets, the dense context loss and image batches."""

    def _streams(self, rank: int, world: int) -> dict[str, Stream]:
        """modality -> the stream this rank reads (one process: both; several: its modality's, sliced among the
        ranks of that modality)."""
        cfg, img = self.cfg, self.cfg.objective.images
        video = Stream(cfg.data, cfg.mask, cfg.batch_size, self.grid, cfg.seed, rank, world)
        if img is None:
            return {"video": video}
        image = Stream(img.data, img.mask, img.batch_size, cfg.model.grid(1, img.data.crop_size),
                       cfg.seed + IMAGE_SEED_OFFSET, rank, world)
        if world == 1:
            return {"video": video, "image": image}
        n = image_ranks(world, img.rank_ratio)
        if rank < n:
            return {"image": image._replace(world=n)}
        # as upstream, a video rank's batch is scaled so the video ranks together read batch_size x world clips
        return {"video": video._replace(batch=cfg.batch_size * world // (world - n), rank=rank - n, world=world - n)}

    def _build_data(self, rank: int, world: int):
        self.rank, self.world = rank, world
        self.loaders, self.grids, samplers = {}, {}, []
        images = self.cfg.objective.images
        for mod, st in self._streams(rank, world).items():
            collate = MaskCollator(st.mask, st.grid, seed=st.seed, rank=st.rank, world_size=st.world)

            def owns(step: int, m: str = mod) -> bool:  # whether this rank reads a `m` batch at `step`
                return any(m == x for x, _ in step_modalities(images, step, rank, world))

            loader, _ = build_pretrain_loader(st.data, st.batch, st.seed, st.rank, st.world, collate_fn=collate,
                                              wrap_sampler=lambda b, o=owns: PlannedSampler(b, o, self.cfg.grad_accum))
            self.loaders[mod], self.grids[mod] = loader, st.grid
            samplers.append(loader.batch_sampler)  # the PlannedSampler
        self.loader = next(iter(self.loaders.values()))
        return MixedSampler(samplers)

    def _build_jepa(self) -> Jepa21Model:
        cfg, obj = self.cfg, self.cfg.objective
        self.levels = cfg.model.pred_levels if obj.hierarchical_targets else 1
        self.terms: dict[str, dict] = {}  # modality -> its last loss terms
        return Jepa21Model(self.encoder, self.predictor, cfg.optim.loss_exp, cfg.optim.reg_coeff,
                           hierarchical=obj.hierarchical_targets, predict_context=obj.predict_context,
                           weight_distance=obj.weight_distance_loss, mask_batching=cfg.mask_batching)

    def extra_record(self) -> dict:
        """The last micro-batch's terms per modality: loss_pred / loss_ctx / lambda (e.g. `video_loss_ctx`)."""
        return {f"{m}_{k}": float(v) for m, t in self.terms.items() for k, v in t.items()}

    def _open_batches(self) -> MixedIter:
        images = self.cfg.objective.images
        return MixedIter(self.loaders, lambda: step_modalities(images, self.step, self.rank, self.world))

    def _forward_backward(self, batch: MixedBatch, last: bool) -> tuple[Tensor, Tensor]:
        """One micro-batch of every planned modality: targets, forward, weighted backward -> (the weighted loss,
        detached, float32; the last level of the targets (B, N, D) for the collapse monitors)."""
        acc, obj, total, logged = self.acc, self.cfg.objective, torch.zeros((), device=self.acc.device), None
        for j, (mod, weight, b) in enumerate(batch.parts):
            final = last and j == len(batch.parts) - 1
            clips = normalize_clips(b.clips, acc.device)  # (B, C, T, H, W); T = 1 for images
            ctx = [m.to(acc.device, non_blocking=True) for m in b.context_masks]  # [(B, K_ctx)]
            tgt = [m.to(acc.device, non_blocking=True) for m in b.target_masks]  # [(B, K_tgt)]
            with acc.autocast():
                h = target_features21(self.target, clips, self.levels)  # (B, N, L*D)
            if self.sharded:
                reshard(self.target)
                grad_sync(self.jepa, final)
            sync = acc.no_sync(self.model) if not final and not self.sharded else contextlib.nullcontext()
            with sync:
                with acc.autocast():
                    loss = self.model(clips, h, ctx, tgt, self.grids[mod], context_lambda(obj, self.step, mod), mod)
                acc.backward(weight * loss / self.micro_batches)
            total = total + weight * loss.detach().float()
            self.terms[mod] = dict(self.jepa.last_terms)  # tensors: read (synchronised) only on log steps
            if logged is None or mod == "video":
                logged = h[..., -self.encoder.embed_dim:]  # (B, N, D) the deepest level
        return total, logged
