"""Resumable, distributed-aware batch sampling over several datasets, and the pretraining DataLoader.

As V-JEPA 2 mixes datasets (`DistributedWeightedSampler`): each sample of dataset d has probability
proportional to w_d / n_d, drawn with replacement. Here the draw of step s is a pure function of
(seed, s): a numpy Generator seeded by (seed, s) draws the global batch (batch_size * world_size) and rank
r takes slice r, so resuming at step s (or changing the worker count) reproduces the same batches.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from vjepa_cli.config.data import DataConfig

_MASK64 = (1 << 64) - 1


class StepBatchSampler:
    """Yields, for each step, this rank's list of `(step, global_index)` keys for `VideoClipDataset`.

    Args:
        sizes_per_dataset: n_d, videos in each dataset (global index = dataset offset + local index).
        weights: w_d per dataset (None: equal); dataset d is drawn with probability w_d / sum(w).
        batch_size: samples per rank per step.
        seed: base seed.
        rank, world_size: this process's slice of the global batch.
        start_step: first step to yield.
        num_steps: stop before this step (None: infinite).

    The position is `step`, the next step `__iter__` will yield. A DataLoader prefetches, so for exact
    resume save the trainer's own step and pass it as `start_step` / `load_state_dict({"step": s})`.
    """

    def __init__(self, sizes_per_dataset: Sequence[int], weights: Sequence[float] | None, batch_size: int,
                 seed: int, rank: int = 0, world_size: int = 1, start_step: int = 0, num_steps: int | None = None):
        self.sizes = np.asarray(sizes_per_dataset, dtype=np.int64)
        if self.sizes.size == 0 or (self.sizes < 1).any():
            raise ValueError("every dataset needs at least one video")
        w = np.ones(len(self.sizes)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != self.sizes.shape or (w <= 0).any():
            raise ValueError("need one positive weight per dataset")
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError("need batch_size >= 1 and 0 <= rank < world_size")
        self.p = w / w.sum()
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.step, self.num_steps = start_step, num_steps

    def global_batch(self, step: int) -> np.ndarray:
        """All ranks' global indices for `step`: int64 [world_size * batch_size]."""
        rng = np.random.default_rng([self.seed & _MASK64, step])
        g = self.batch_size * self.world_size
        d = rng.choice(len(self.sizes), size=g, p=self.p)  # dataset with prob w_d / sum w
        local = rng.integers(0, self.sizes[d])  # uniform within it: w_d / n_d per sample overall
        return self.offsets[d] + local

    def batch(self, step: int) -> list[tuple[int, int]]:
        idx = self.global_batch(step)[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        return [(step, int(i)) for i in idx]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        while self.num_steps is None or self.step < self.num_steps:
            step = self.step
            self.step += 1
            yield self.batch(step)

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an infinite StepBatchSampler has no length")
        return max(0, self.num_steps - self.step)

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "batch_size": self.batch_size, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.seed = int(state.get("seed", self.seed))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resize; intra-op threads would oversubscribe the cores


class LoaderIter:
    """`iter(loader)` whose worker processes are reaped and unregistered from torch when `close()` is called.

    torch registers every worker pid of a multi-process iterator in a process-wide table checked by its SIGCHLD
    handler, and removes them only when the iterator shuts down (normally from `__del__`). When a run ends in an
    exception, the traceback keeps the iterator alive (a `persistent_workers` loader holds it as well) until some
    later garbage collection; a worker killed from outside then stays registered and unreaped, and the next child
    process that exits anywhere in this Python process makes the handler raise "DataLoader worker (pid N) is killed
    by signal" at a random point. So the run calls `close()` in its `finally`.

    `next()` also names a dead worker when the first sign of its death is the batch it left behind: the tensors
    of a batch are shared through the worker's file descriptors, so unpickling one after the worker was killed
    fails with ConnectionResetError / EOFError instead of torch's "DataLoader worker" RuntimeError.
    """

    def __init__(self, loader: torch.utils.data.DataLoader):
        self._it = iter(loader)

    def __iter__(self) -> LoaderIter:
        return self

    def __next__(self):
        try:
            return next(self._it)
        except (OSError, EOFError) as e:
            dead = self._reap_dead_workers()
            if not dead:
                raise
            raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(map(str, dead))}) exited unexpectedly") from e

    def _reap_dead_workers(self, grace_s: float = 1.0) -> list[int]:
        """Pids of the workers that have exited, joined (reaped) so the SIGCHLD check cannot report them again.
        A worker's death closes its file descriptors and its sentinel together, so `grace_s` only has to cover
        the kernel finishing the exit; a healthy worker costs the grace once, on an error path."""
        workers = list(getattr(self._it, "_workers", ()))  # torch names no public accessor for its processes
        if not workers or not multiprocessing.connection.wait([w.sentinel for w in workers], grace_s):
            return []
        dead = []
        for w in workers:
            w.join(timeout=grace_s)
            if w.exitcode is not None:
                dead.append(w.pid)
        return dead

    def close(self) -> None:
        """Stop the workers now (what the iterator's `__del__` would do) with torch's SIGCHLD handler held off:
        reaping a killed worker must not raise about that very worker in the middle of the shutdown."""
        shutdown = getattr(self._it, "_shutdown_workers", None)  # None: single-process iterator, nothing to stop
        if shutdown is not None:
            with _sigchld_held_off():
                shutdown()  # joins the workers, then `_remove_worker_pids(id(iterator))`


@contextlib.contextmanager
def _sigchld_held_off():
    """SIGCHLD at its default (discard) while the block runs, then the previous Python handler again. Only the
    main thread may set handlers, and only it runs them, so elsewhere there is nothing to hold off. Never SIG_IGN:
    for SIGCHLD that makes the kernel reap children itself, and `join` would then fail."""
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)


def build_pretrain_loader(
    data_cfg: DataConfig,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    collate_fn: Callable | None = None,
    num_workers: int | None = None,
    start_step: int = 0,
    num_steps: int | None = None,
    pin_memory: bool | None = None,
    wrap_sampler: Callable[[StepBatchSampler], object] | None = None,
) -> tuple[torch.utils.data.DataLoader, StepBatchSampler]:
    """DataLoader over `data_cfg`'s datasets (synth ones generated into the cache first) with a
    `StepBatchSampler`. Each batch is `collate_fn(list of sample dicts)` (default `collate_clips`).
    `wrap_sampler(sampler)` gives the batch sampler the loader iterates instead (one that skips steps, say).

    Returns:
        (loader, sampler): iterate the loader; save/restore position with the trainer's step.
    """
    from vjepa_cli.data.dataset import VideoClipDataset, collate_clips
    from vjepa_cli.data.sources import resolve_datasets

    manifests, weights = resolve_datasets(data_cfg, split="train")
    dataset = VideoClipDataset(data_cfg, manifests, train=True, seed=seed)
    sampler = StepBatchSampler(dataset.sizes, weights, batch_size, seed, rank, world_size, start_step, num_steps)
    workers = data_cfg.num_workers if num_workers is None else num_workers
    pin = (data_cfg.pin_memory and torch.cuda.is_available()) if pin_memory is None else pin_memory
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler if wrap_sampler is None else wrap_sampler(sampler), num_workers=workers, collate_fn=collate_fn or collate_clips,
        pin_memory=pin, persistent_workers=workers > 0, worker_init_fn=_worker_init if workers else None,
        prefetch_factor=2 if workers else None,
    )
    return loader, sampler
