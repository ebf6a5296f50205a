"""How the frozen-model commands feed the model: decoding threads that run ahead across videos with bounded
memory, the default number of them, CPU forwards in groups of clips, and the allocator set-up of the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from _eval_helpers import save_tiny_model, write_index_video

import vjepa_cli.infer.windows as iw
from vjepa_cli.allocator import user_tuned
from vjepa_cli.config.extract import WindowConfig
from vjepa_cli.infer.extract import encode_windows
from vjepa_cli.infer.inputs import VideoJob
from vjepa_cli.infer.model import load_eval_model
from vjepa_cli.infer.windows import VideoEnded, VideoStarted, WindowDecoded, decode_workers, stream_windows


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    paths = [write_index_video(d / f"v{i}.mp4", n) for i, n in enumerate((30, 9, 41, 5))]
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    paths.insert(2, d / "broken.mp4")
    return [VideoJob(i, p, d / f"o{i}.safetensors") for i, p in enumerate(paths)]


def _digest(events) -> list:
    out = []
    for ev in events:
        if isinstance(ev, WindowDecoded):
            out.append(("w", ev.job.index, ev.window.frames.tobytes(), ev.window.start, ev.window.end))
        elif isinstance(ev, VideoStarted):
            out.append(("s", ev.job.index, ev.video.num_windows))
        else:
            out.append(("e", ev.job.index, ev.error is None))
    return out


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_threads_deliver_what_the_inline_decode_delivers(videos, workers):
    """Same events, same bytes, same order as decoding in the calling thread, a broken file included."""
    cfg = WindowConfig(frames=4, frame_step=2, stride=3, size=32)
    inline = _digest(stream_windows(videos, cfg, 32, 0, queue_size=2))
    assert [e[:2] for e in inline if e[0] != "w"][:6] == [("s", 0), ("e", 0), ("s", 1), ("e", 1), ("e", 2), ("s", 3)]
    assert ("e", 2, False) in inline  # the broken file ends with its error
    assert _digest(stream_windows(videos, cfg, 32, workers, queue_size=2)) == inline


class _Fake:
    """`video_events` stand-in: two windows per video, recording which videos a thread has started."""

    def __init__(self):
        self.started: list[int] = []
        self.done = {i: threading.Event() for i in range(10)}

    def __call__(self, job, wcfg, img_size, tail=True, threads=1):
        self.started.append(job.index)
        try:
            yield VideoStarted(job, None)
            for k in range(2):
                yield WindowDecoded(job, k)
            yield VideoEnded(job)
        finally:
            self.done[job.index].set()


def test_a_decoder_takes_the_next_video_before_the_model_reads_the_last(monkeypatch):
    """The thread moves to video 1 as soon as video 0 is decoded, while the consumer still holds video 0's
    first event (it used to wait for the consumer to read video 0 to its end), and it never has more than
    workers + 1 videos taken and unread."""
    fake = _Fake()
    monkeypatch.setattr(iw, "video_events", fake)
    jobs = [VideoJob(i, f"v{i}", f"o{i}") for i in range(6)]
    stream = stream_windows(jobs, WindowConfig(), 32, workers=1, queue_size=8)
    first = next(stream)
    assert isinstance(first, VideoStarted) and first.job.index == 0
    assert fake.done[1].wait(10), "video 1 was not decoded while video 0 was being read"
    time.sleep(0.2)  # room for a wrong implementation to run further ahead
    assert fake.started == [0, 1]  # two slots: the video being read and one ahead
    rest = list(stream)
    assert [ev.job.index for ev in rest if isinstance(ev, VideoEnded)] == [0, 1, 2, 3, 4, 5]
    assert fake.started == [0, 1, 2, 3, 4, 5]


def test_default_decoding_threads_by_device():
    assert decode_workers(None, torch.device("cpu")) == 0
    assert decode_workers(None, torch.device("cuda", 0)) == 1
    assert decode_workers(None, "cpu") == 0
    assert decode_workers(3, torch.device("cpu")) == 3 and decode_workers(0, torch.device("cuda")) == 0


def test_cpu_forwards_in_groups_match_one_batch(tmp_path, monkeypatch):
    import vjepa_cli.infer.extract as ex

    model = load_eval_model(save_tiny_model(tmp_path / "m.safetensors"), torch.device("cpu"), "fp32")
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (5, 4, 32, 32, 3), dtype=np.uint8)
    calls = []
    model.encoder.register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    whole = encode_windows(model.encoder, clips, torch.device("cpu"), torch.float32, "none")
    tokens = whole.shape[1]  # one clip's tokens
    assert calls == [5]  # a small clip: the whole batch in one forward
    calls.clear()
    monkeypatch.setattr(ex, "CPU_FORWARD_TOKENS", 2 * tokens)
    grouped = encode_windows(model.encoder, clips, torch.device("cpu"), torch.float32, "none")
    assert calls == [2, 2, 1]
    torch.testing.assert_close(grouped, whole, atol=1e-6, rtol=1e-5)
    pooled = encode_windows(model.encoder, clips, torch.device("cpu"), torch.float32, "mean")
    torch.testing.assert_close(pooled, whole.mean(1), atol=1e-6, rtol=1e-5)


def test_malloc_left_alone_when_the_user_set_it():
    assert not user_tuned({"PATH": "/bin"})
    assert user_tuned({"MALLOC_ARENA_MAX": "2"}) and user_tuned({"MALLOC_TRIM_THRESHOLD_": "0"})
    assert user_tuned({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})


_FREE_PROBE = """
import ctypes, os, sys
from vjepa_cli.allocator import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "1" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
n = 24 << 20  # the process's first block this large (later ones glibc may keep anyway: its threshold moves)
p = libc.malloc(n)
ctypes.memset(p, 1, n)
before = rss()
libc.free(p)
after = rss()
print(tuned, (before - after) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_keeps_a_freed_block():
    """A freed 24 MB block goes back to the kernel by default, and stays in the process once tuned."""
    from vjepa_cli.allocator import _glibc

    if _glibc() is None:
        pytest.skip("not glibc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}

    def probe(tune: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FREE_PROBE, tune], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        return out[0], int(out[1])

    tuned, kept_drop = probe("1")
    assert tuned == "True" and kept_drop <= 1
    untuned, default_drop = probe("0")
    assert untuned == "False" and default_drop >= 20


def test_inline_decoding_uses_the_cores_and_threads_use_one(videos, monkeypatch):
    seen = []
    real = iw.open_video
    monkeypatch.setattr(iw, "open_video",
                        lambda path, backend, threads=1: seen.append(threads) or real(path, backend, threads))
    cfg = WindowConfig(frames=4, frame_step=2, size=32)
    list(stream_windows(videos[:2], cfg, 32, 0))
    assert seen == [min(torch.get_num_threads(), iw.MAX_DECODE_THREADS)] * 2
    seen.clear()
    list(stream_windows(videos[:2], cfg, 32, 2))
    assert seen == [1, 1]
