"""`vjepa extract -j N`: the videos shared among N processes: this one, with the model it has loaded, and N - 1
started here (spawned: a fresh interpreter each) that load their own copy.

On the CPU each process gets 1/N of torch's threads for its forwards and its decoder. One process alternates
decoding and forwards on every core, so a core idles whenever one of them scales badly to two threads; N
processes of one core each keep every core busy with whichever they are doing, at the price of N copies of the
model. Videos go to the processes by size, largest first to the least loaded, so the shares end together.
On CUDA process k uses device k modulo the number of GPUs (or the one device named).

Every process writes its videos' files itself (atomically, as one process does); the started ones send their
progress and results here, handed to the caller's `Listener` between this process's own callbacks and after.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from pathlib import Path
from typing import Any

import torch

from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.inputs import VideoJob

POLL_S = 0.5  # how often the parent looks for a process that died without a word


def shares(jobs: list[VideoJob], n: int) -> list[list[VideoJob]]:
    """Split `jobs` into at most `n` non-empty shares of about equal bytes (largest first to the lightest share),
    each in input order."""
    def size(job: VideoJob) -> int:
        try:
            return os.path.getsize(job.path)
        except OSError:
            return 0  # missing: fails fast in whichever process takes it

    loads, out = [0] * n, [[] for _ in range(n)]
    for nbytes, job in sorted(((size(j), j) for j in jobs), key=lambda t: t[0], reverse=True):
        k = loads.index(min(loads))
        loads[k] += nbytes + 1
        out[k].append(job)
    return [sorted(s, key=lambda j: j.index) for s in out if s]


def worker_device(device: torch.device, rank: int) -> torch.device:
    """The device of process `rank`: a named CUDA device as given, else one GPU per process in turn."""
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return device


class _QueueListener:
    """A `Listener` that forwards every callback to the parent."""

    def __init__(self, q: Any):
        self.q = q

    def videos_planned(self, n: int) -> None: ...

    def video_started(self, job: VideoJob, planned_windows: int) -> None:
        self.q.put(("started", (job, planned_windows)))

    def windows_done(self, n: int) -> None:
        self.q.put(("windows", n))

    def video_done(self, result: Any) -> None:
        self.q.put(("done", result))


def _work(rank: int, share: list[VideoJob], cfg: Any, run: Any, model_path: str, device: torch.device, threads: int,
          q: Any) -> None:
    """One process: load the model, extract `share`, say so (or why not) and exit."""
    from vjepa_cli.infer.extract import ExtractResult, _Extractor
    from vjepa_cli.infer.model import load_eval_model

    torch.set_num_threads(threads)
    try:
        dev = worker_device(device, rank)
        model = load_eval_model(model_path, dev, cfg.dtype)
        _Extractor(model.encoder, dev, cfg, run, _QueueListener(q), ExtractResult()).extract(share)
        q.put(("exit", rank))
    except KeyboardInterrupt:
        q.put(("error", (rank, "interrupted")))
    except Exception as e:  # the parent reports it as one line for this process's unfinished videos
        q.put(("error", (rank, f"{type(e).__name__}: {e}" if not isinstance(e, VjepaError) else str(e))))


def extract_in_processes(todo: list[VideoJob], n: int, cfg: Any, run: Any, model: Any, model_path: Path,
                         device: torch.device, listener: Any, result: Any) -> None:
    """Extract `todo` in `n` processes: this one (with `model`, already loaded) and n - 1 started here; every
    video ends in `result.videos` (ok, or failed with the reason)."""
    from vjepa_cli.infer.extract import _Extractor

    parts = shares(todo, n)
    if len(parts) > 1 and not (model_path.is_file() or model_path.is_dir()):
        raise VjepaError("--jobs above 1 needs the model as a file or folder (each process loads it)",
                         "pass --model PATH, or use -j 1")
    threads = max(1, torch.get_num_threads() // len(parts)) if device.type == "cpu" else 1
    ctx = mp.get_context("spawn")  # a fresh interpreter: no OpenMP pool or CUDA context inherited through fork
    q = ctx.Queue()
    procs = {k: ctx.Process(target=_work, args=(k, parts[k], cfg, run, str(model_path), device, threads, q),
                            daemon=True) for k in range(1, len(parts))}
    pool = _Children(procs, {k: {str(j.path): j for j in parts[k]} for k in procs}, q, listener, result)
    before = torch.get_num_threads()
    try:
        for p in procs.values():
            p.start()
        torch.set_num_threads(threads)  # this process's share, on its 1/n of the threads, beside the others
        _Extractor(model.encoder, worker_device(device, 0), cfg, run, _Forward(listener, pool), result).extract(parts[0])
        pool.wait()
    finally:
        torch.set_num_threads(before)
        for p in procs.values():
            if p.is_alive():
                p.terminate()
            p.join()
        q.close()


class _Forward:
    """This process's `Listener`: its own callbacks go to the caller's, and between them the other processes'
    messages are handed on too (so their progress shows while this one works)."""

    def __init__(self, listener: Any, pool: _Children):
        self.listener, self.pool = listener, pool

    def videos_planned(self, n: int) -> None: ...

    def video_started(self, job: VideoJob, planned_windows: int) -> None:
        self.listener.video_started(job, planned_windows)
        self.pool.drain()

    def windows_done(self, n: int) -> None:
        self.listener.windows_done(n)
        self.pool.drain()

    def video_done(self, result: Any) -> None:
        self.listener.video_done(result)  # `_Extractor` has put it in the result already
        self.pool.drain()


class _Children:
    """The started processes' messages, handed to the caller's `Listener` and `result`."""

    def __init__(self, procs: dict[int, Any], pending: dict[int, dict[str, VideoJob]], q: Any, listener: Any,
                 result: Any):  # pending: per process, its videos not reported yet, by path
        self.procs, self.pending, self.q, self.listener, self.result = procs, pending, q, listener, result
        self.running = set(procs)

    def drain(self) -> None:
        """Hand on every message waiting now."""
        while self.running:
            try:
                self._handle(*self.q.get_nowait())
            except queue.Empty:
                return

    def wait(self) -> None:
        """Hand on messages until every process has ended (or died: its unreported videos then fail)."""
        while self.running:
            try:
                self._handle(*self.q.get(timeout=POLL_S))
            except queue.Empty:
                for k in [k for k in self.running if self.procs[k].exitcode is not None]:
                    self._fail_rest(k, f"extraction process exited with code {self.procs[k].exitcode}")
                    self.running.discard(k)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "started":
            self.listener.video_started(*payload)
        elif kind == "windows":
            self.listener.windows_done(payload)
        elif kind == "done":
            for share in self.pending.values():
                share.pop(payload.path, None)
            self.result.videos.append(payload)
            self.listener.video_done(payload)
        elif kind == "exit":
            self.running.discard(payload)
        elif kind == "error":
            self._fail_rest(payload[0], payload[1])
            self.running.discard(payload[0])

    def _fail_rest(self, k: int, error: str) -> None:
        """Report every video process `k` has not reported as failed, with the reason it stopped."""
        from vjepa_cli.infer.extract import VideoResult

        for job in self.pending[k].values():
            r = VideoResult(str(job.path), str(job.output), "failed", error=error)
            self.result.videos.append(r)
            self.listener.video_done(r)
        self.pending[k].clear()

