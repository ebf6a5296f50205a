"""The torchcodec video backend.

torchcodec does not load on the CI machine (its wheels need FFmpeg's shared libraries and a matching torch build),
so the adapter is checked against a stand-in module with torchcodec's documented interface (`VideoDecoder(path,
dimension_order=, num_ffmpeg_threads=, seek_mode=)`, `len()`, `.metadata.average_fps/width/height`,
`.get_frames_at(indices=).data`) that decodes with PyAV; the last test runs the real one wherever it loads.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from vjepa_cli.data.media import VideoReadError, open_video, read_frames, write_video
from vjepa_cli.errors import VjepaError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (32, 80, 3), dtype=np.uint8)
    frames = np.stack([base[:, t:t + 48] for t in range(24)])  # (24, 32, 48, 3), one pixel a frame
    path = tmp_path_factory.mktemp("tc") / "clip.mp4"
    write_video(path, frames, fps=12, keyint=6)
    return path


class _StandInDecoder:
    calls: list[dict] = []

    def __init__(self, path, dimension_order="NCHW", num_ffmpeg_threads=1, seek_mode="exact"):
        import av

        type(self).calls.append({"dimension_order": dimension_order, "num_ffmpeg_threads": num_ffmpeg_threads,
                                 "seek_mode": seek_mode})
        try:
            with av.open(path) as c:
                s = c.streams.video[0]
                self._frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])
                fps = float(s.average_rate)
        except av.FFmpegError as e:
            raise RuntimeError(f"Could not open input file: {path} {e}") from None
        h, w = self._frames.shape[1:3]
        self.metadata = types.SimpleNamespace(average_fps=fps, width=w, height=h)
        self._nhwc = dimension_order == "NHWC"

    def __len__(self):
        return len(self._frames)

    def get_frames_at(self, indices):
        data = torch.from_numpy(self._frames[list(indices)])  # (T, H, W, 3)
        return types.SimpleNamespace(data=data if self._nhwc else data.permute(0, 3, 1, 2))


@pytest.fixture
def stand_in(monkeypatch):
    pkg, decoders = types.ModuleType("torchcodec"), types.ModuleType("torchcodec.decoders")
    decoders.VideoDecoder = _StandInDecoder
    pkg.decoders = decoders
    monkeypatch.setitem(sys.modules, "torchcodec", pkg)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", decoders)
    _StandInDecoder.calls.clear()
    return _StandInDecoder


def test_frames_and_info_match_pyav(clip, stand_in):
    idx = [23, 0, 5, 5, 12]
    a = read_frames(clip, idx, backend="torchcodec")
    np.testing.assert_array_equal(a, read_frames(clip, idx, backend="pyav"))
    assert a.dtype == np.uint8 and a.shape == (5, 32, 48, 3)
    r, p = open_video(clip, "torchcodec", threads=0), open_video(clip, "pyav")
    assert r.name == "torchcodec" and r.info == p.info and (r.num_frames, r.fps) == (24, 12.0)
    assert stand_in.calls[-1] == {"dimension_order": "NHWC", "num_ffmpeg_threads": 0, "seek_mode": "exact"}
    with pytest.raises(VideoReadError, match="cannot decode frame 24 \\(the video has 24\\)"):
        r.get_batch([3, 24])


def test_auto_never_picks_torchcodec(clip, stand_in):
    assert open_video(clip, "auto").name != "torchcodec" and not stand_in.calls


def test_bad_files_are_short_reasons(tmp_path, stand_in):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoReadError, match="cannot open with torchcodec") as e:
        open_video(bad, "torchcodec")
    assert "\n" not in str(e.value)
    with pytest.raises(VideoReadError, match="file not found"):
        open_video(tmp_path / "none.mp4", "torchcodec")


def test_missing_or_unloadable_torchcodec_is_one_clear_error(clip, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import fails: not installed
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
    with pytest.raises(VjepaError, match="'torchcodec' is not installed"):
        open_video(clip, "torchcodec")
    import builtins

    real_import = builtins.__import__

    def importer(name, *args, **kwargs):  # installed, but its shared libraries do not load (as on this machine)
        if name.startswith("torchcodec"):
            raise RuntimeError("Could not load libtorchcodec. Likely causes:\n  1. FFmpeg is not properly installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importer)
    with pytest.raises(VjepaError, match=r"'torchcodec' cannot load: Could not load libtorchcodec. Likely causes: \(it needs FFmpeg"):
        open_video(clip, "torchcodec")


def test_recipe_keys_accept_torchcodec():
    from vjepa_cli.config.data import DataConfig
    from vjepa_cli.config.probe import ProbeDataConfig

    assert DataConfig(video_backend="torchcodec").video_backend == "torchcodec"
    assert ProbeDataConfig(backend="torchcodec").backend == "torchcodec"


def test_real_torchcodec_matches_pyav(clip):
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception as e:  # not installed, or its libraries do not load here
        pytest.skip(f"torchcodec unusable here: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    idx = [0, 7, 23, 7]
    np.testing.assert_array_equal(read_frames(clip, idx, backend="torchcodec"), read_frames(clip, idx, backend="pyav"))


def test_an_unusable_backend_stops_a_run_before_any_file(clip, tmp_path, monkeypatch, run_cli):
    from vjepa_cli.config.data import DataConfig
    from vjepa_cli.data.dataset import VideoClipDataset
    from vjepa_cli.data.manifest import ManifestRow

    monkeypatch.setitem(sys.modules, "torchcodec", None)
    r = run_cli("preprocess", clip, "-o", tmp_path / "m.csv", "--video-backend", "torchcodec")
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1 and "'torchcodec' is not installed" in r.err
    assert not list(tmp_path.iterdir())  # nothing written
    with pytest.raises(VjepaError, match="'torchcodec' is not installed"):
        VideoClipDataset(DataConfig(video_backend="torchcodec"), [[ManifestRow(str(clip), 0)]], train=True)
