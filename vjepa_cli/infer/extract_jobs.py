"""`vjepa extract -j N`: the videos shared among N processes, each with its own copy of the model.

On the CPU each process gets 1/N of torch's threads for its forwards and its decoder. One process alternates
decoding and forwards on every core, so a core idles whenever one of them scales badly to two threads; N
processes of one core each keep every core busy with whichever they are doing, at the price of N copies of the
model. Videos go to the processes by size, largest first to the least loaded, so the shares end together.
On CUDA process k uses device k modulo the number of GPUs (or the one device named).

Every process writes its videos' files itself (atomically, as one process does) and sends its progress and
results to the parent, which hands them to the caller's `Listener` in the order they arrive.
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
    for job in sorted(jobs, key=size, reverse=True):
        k = loads.index(min(loads))
        loads[k] += size(job) + 1
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


def extract_in_processes(todo: list[VideoJob], n: int, cfg: Any, run: Any, model_path: Path, device: torch.device,
                         listener: Any, result: Any) -> None:
    """Extract `todo` in `n` processes; every video ends in `result.videos` (ok, or failed with the reason)."""
    from vjepa_cli.infer.extract import VideoResult

    if not model_path.is_file() and not model_path.is_dir():
        raise VjepaError("--jobs above 1 needs the model as a file or folder (each process loads it)",
                         "pass --model PATH, or use -j 1")
    parts = shares(todo, n)
    threads = max(1, torch.get_num_threads() // len(parts)) if device.type == "cpu" else 1
    ctx = mp.get_context("spawn")  # a fresh interpreter: no OpenMP pool or CUDA context inherited through fork
    q = ctx.Queue()
    procs = [ctx.Process(target=_work, args=(k, s, cfg, run, str(model_path), device, threads, q), daemon=True)
             for k, s in enumerate(parts)]
    pending = {k: {j.index: j for j in s} for k, s in enumerate(parts)}  # per process: videos not yet reported
    running = set(range(len(procs)))
    for p in procs:
        p.start()
    try:
        while running:
            try:
                kind, payload = q.get(timeout=POLL_S)
            except queue.Empty:
                for k in [k for k in running if procs[k].exitcode is not None]:  # died without a word
                    _fail_rest(pending[k], f"extraction process exited with code {procs[k].exitcode}", result,
                               listener, VideoResult)
                    running.discard(k)
                continue
            if kind == "started":
                listener.video_started(*payload)
            elif kind == "windows":
                listener.windows_done(payload)
            elif kind == "done":
                for share in pending.values():
                    share.pop(_index(share, payload.path), None)
                result.videos.append(payload)
                listener.video_done(payload)
            elif kind in ("exit", "error"):
                k = payload if kind == "exit" else payload[0]
                if kind == "error":
                    _fail_rest(pending[k], payload[1], result, listener, VideoResult)
                running.discard(k)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
        q.close()


def _index(share: dict[int, VideoJob], path: str) -> int | None:
    return next((i for i, j in share.items() if str(j.path) == path), None)


def _fail_rest(share: dict[int, VideoJob], error: str, result: Any, listener: Any, video_result: type) -> None:
    """Report every video of a process that stopped early as failed with its reason."""
    for job in share.values():
        r = video_result(str(job.path), str(job.output), "failed", error=error)
        result.videos.append(r)
        listener.video_done(r)
    share.clear()
