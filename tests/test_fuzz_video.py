"""Corrupted videos: a real H.264 mp4, truncated at random points and with random bytes flipped, through
`probe_video`, the training dataset (`VideoClipDataset`) and `vjepa extract`.

Every case ends in decoded frames or in a clear refusal (one VjepaError line, a bad read recorded and replaced,
or `extract` exiting 1 naming the video, with no file written): never a traceback, a crash or a hang. The
decoders are C code, so the cases run in a worker process of their own (`_video_fuzz_worker.py`) with a time
limit each; a crash or a hang is reported with its case, and the worker is restarted for the next one.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from _eval_helpers import save_tiny_model
from _fuzz import fuzz, tally
from hypothesis import example, given
from hypothesis import strategies as st

WORKER = Path(__file__).with_name("_video_fuzz_worker.py")
CASE_LIMIT_S = 30.0  # one case decodes a 24-frame 64x48 clip: well under a second, even on a busy machine


class Worker:
    """The worker process and a thread that reads its answers, so a silent worker times out instead of
    blocking the test."""

    def __init__(self, log: Path):
        self._log = open(log, "ab")  # FFmpeg's and decord's C-level messages, for a post-mortem
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self.answers), daemon=True).start()

    @staticmethod
    def _pump(proc: subprocess.Popen, answers: queue.Queue) -> None:
        for line in proc.stdout:
            answers.put(line)
        answers.put(None)  # end of output: the worker died

    def ask(self, req: dict, limit: float = CASE_LIMIT_S) -> dict:
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.answers.get(timeout=limit)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            self._start()
            return {"outcome": "hang", "detail": f"no answer within {limit} s"}
        except BrokenPipeError:
            line = None
        if line is None:
            code = self.proc.wait()
            self._start()
            return {"outcome": "crash", "detail": f"the worker exited with {code}"}
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _remux(src: Path, dst: Path, fmt: str) -> Path:
    """The same H.264 packets in another container (Matroska: another demuxer, other ways to break)."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", format=fmt) as o:
        out = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                o.mux(packet)
    return dst


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Good videos (24 textured frames, a keyframe every 8; mp4 and mkv), a tiny model, and a warm worker."""
    from vjepa_cli.data.media import write_video

    d = tmp_path_factory.mktemp("video-fuzz")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # coarse blocks
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(24)])  # (24, 48, 64, 3), moving right
    good = write_video(d / "good.mp4", frames, fps=8, crf=23, keyint=8)
    model = save_tiny_model(d / "model.safetensors")
    worker = Worker(d / "decoder-messages.log")
    first = worker.ask({"target": "probe", "path": str(good)}, limit=300)  # imports torch, PyAV, decord
    assert first["outcome"] == "decoded", first
    mkv = _remux(good, d / "good.mkv", "matroska")
    assert worker.ask({"target": "probe", "path": str(mkv)})["outcome"] == "decoded"
    yield {"dir": d, "good": good, "data": {"mp4": good.read_bytes(), "mkv": mkv.read_bytes()}, "model": model,
           "worker": worker, "n": 0}
    worker.close()


def _corrupt(data: bytes, cut: float | None, flips: list[tuple[str, float, int]]) -> bytes:
    out = bytearray(data[:int(len(data) * cut)] if cut is not None else data)
    for region, where, xor in flips:
        if not out:
            break
        lo, hi = {"any": (0, len(out)), "head": (0, min(64, len(out))),  # ftyp and the mdat header
                  "tail": (len(out) * 85 // 100, len(out))}[region]  # the moov index sits at the end
        out[lo + int(where * (hi - lo))] ^= xor
    return bytes(out)


def _run(lab: dict, target: str, container: str, cut: float | None, flips: list) -> None:
    lab["n"] += 1
    bad = lab["dir"] / f"case{lab['n']}.{container}"
    bad.write_bytes(_corrupt(lab["data"][container], cut, flips))
    req = {"target": target, "path": str(bad), "good": str(lab["good"]), "model": str(lab["model"]),
           "out": str(lab["dir"] / f"case{lab['n']}.safetensors"), "seed": lab["n"]}
    res = lab["worker"].ask(req)
    kind = "truncated" if cut is not None and not flips else "flipped" if cut is None else "both"
    tally(f"video.{target}", res["outcome"])
    tally(f"video.{target}.{container}.{kind}", res["outcome"])
    assert res["outcome"] in ("decoded", "refused", "recorded"), (target, cut, flips, res["detail"])
    bad.unlink()


_cut = st.floats(0, 1, exclude_max=True)
_flips = st.lists(st.tuples(st.sampled_from(["any", "head", "tail"]), st.floats(0, 1, exclude_max=True),
                            st.integers(1, 255)), min_size=1, max_size=6)
_case = st.one_of(st.tuples(_cut, st.just([])), st.tuples(st.none(), _flips), st.tuples(_cut, _flips))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target, container, n", [
    ("probe", "mp4", 60), ("probe", "mkv", 40), ("dataset", "mp4", 40), ("dataset", "mkv", 20),
    ("extract", "mp4", 25), ("extract", "mkv", 10),
])
def test_corrupted_video(lab, target, container, n):
    @fuzz(n)
    @given(case=_case)
    @example(case=(0.0, []))  # empty file
    @example(case=(0.001, []))  # the ftyp box only
    @example(case=(0.5, []))  # no moov index
    @example(case=(None, [("tail", 0.5, 0xFF)]))
    def check(case):
        _run(lab, target, container, *case)

    check()


def _with_frame_count(mp4: bytes, count: int) -> bytes:
    """The mp4 with its `stts` box claiming `count` frames (the first entry's sample count)."""
    at = mp4.index(b"stts") + 4 + 4 + 4  # box type, version/flags, entry count -> first sample_count
    return mp4[:at] + count.to_bytes(4, "big") + mp4[at + 4:]


@pytest.mark.parametrize("count", [1000, 1_668_576_463])
@pytest.mark.parametrize("target", ["probe", "dataset", "extract"])
def test_damaged_frame_count(lab, target, count):
    """Found by the fuzzing: a flipped byte in `stts` made 24 frames 1.7 billion; decord aborted the process
    (std::bad_alloc) and extract planned billions of windows (a hang). 1000 frames fit the file's bytes but not
    its 3 s at 8 fps. Both are refused by name now, before decord sees the file."""
    lab["n"] += 1
    bad = lab["dir"] / f"count{lab['n']}.mp4"
    bad.write_bytes(_with_frame_count(lab["data"]["mp4"], count))
    res = lab["worker"].ask({"target": target, "path": str(bad), "good": str(lab["good"]), "model": str(lab["model"]),
                             "out": str(lab["dir"] / f"count{lab['n']}.safetensors")})
    assert res["outcome"] in ("refused", "recorded") and f"claims {count} frames" in res["detail"], res
