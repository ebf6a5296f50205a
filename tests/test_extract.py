"""`vjepa extract`: windows and timestamps, pooling, batching across videos, outputs, skip/overwrite, stdin,
bad inputs (no partial files), and the no-model message."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _eval_helpers import frame_ids, save_tiny_model, write_index_video

from vjepa_cli.config.extract import WindowConfig, parse_stride
from vjepa_cli.data.media import crop_boxes, num_windows, plan_windows, probe_video, window_times
from vjepa_cli.data.transforms import normalize_clips
from vjepa_cli.infer.inputs import VideoJob
from vjepa_cli.infer.windows import VideoEnded, VideoStarted, WindowDecoded, video_events
from vjepa_cli.io.tensors import load_tensors


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("extract")
    vids = d / "vids"
    (vids / "sub").mkdir(parents=True)
    write_index_video(vids / "a.mp4", 30)
    write_index_video(vids / "sub" / "b.mp4", 41)
    write_index_video(vids / "short.mp4", 5)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    model = save_tiny_model(d / "model.safetensors")
    return d, vids, model


def test_window_plan_closed_form():
    # 41 frames, step 3: 4-frame windows span 10 frames; every 2 sampled (6 source) frames -> starts 0, 6, .., 30
    assert num_windows(41, 4, 3, 2, tail=False) == 6
    idx = plan_windows(41, 4, 3, 2, tail=False)
    assert idx[0].tolist() == [0, 3, 6, 9] and idx[-1].tolist() == [30, 33, 36, 39]
    tail = plan_windows(41, 4, 3, 2)  # extract covers the whole video: one more window ending at frame 40
    assert len(tail) == 7 and tail[-1].tolist() == [31, 34, 37, 40] and (tail[:6] == idx).all()
    assert window_times(idx, 10.0)[1].tolist() == [0.6, 1.6]
    # shorter than one window: one window padded with the last sampled frame
    assert num_windows(5, 4, 2, 4) == 1 and plan_windows(5, 4, 2, 4).tolist() == [[0, 2, 4, 4]]
    assert WindowConfig(stride_seconds=2.0, frame_step=4).stride_for(30.0) == 15  # 2 s = 60 frames = 15 sampled
    assert WindowConfig(fps=4).step_for(29.97) == 7  # V-JEPA 2 rule: ceil(fps) // target
    assert parse_stride("2s") == (None, 2.0) and parse_stride("8") == (8, None)


def test_crop_boxes_views():
    (w, h), boxes = crop_boxes(64, 48, 36, 32, 1)
    assert (w, h) == (48, 36) and boxes == [(8, 2)]
    (w, h), boxes = crop_boxes(64, 48, 32, 32, 3)  # views: short side = crop, spread along the long side
    assert (w, h) == (43, 32) and boxes == [(0, 0), (6, 0), (11, 0)]


def _windows(path, cfg: WindowConfig, img_size: int = 32) -> list:
    """The windows of one video as the frozen-model commands get them (settings resolved from its frame rate)."""
    return [ev.window for ev in video_events(VideoJob(0, path, path), cfg, img_size) if isinstance(ev, WindowDecoded)]


def test_streamed_windows_read_the_planned_frames(media):
    _, vids, _ = media
    path = vids / "sub" / "b.mp4"
    cfg = WindowConfig(frames=4, frame_step=3, stride=2, size=32)
    wins = _windows(path, cfg)
    info = probe_video(path)
    plan = plan_windows(info.num_frames, 4, 3, 2)
    assert len(wins) == len(plan) == 7
    for w, idx in zip(wins, plan, strict=True):
        assert w.frames.shape == (1, 4, 32, 32, 3)
        assert frame_ids(w.frames[0]).tolist() == idx.tolist()
    np.testing.assert_allclose([[w.start, w.end] for w in wins], window_times(plan, info.fps))
    short = _windows(vids / "short.mp4", WindowConfig(frames=4, frame_step=2))
    assert len(short) == 1 and frame_ids(short[0].frames[0]).tolist() == [0, 2, 4, 4]
    assert (short[0].start, short[0].end) == (0.0, 0.5)


def test_video_events_open_once_and_resolve_once(media, monkeypatch):
    """One open per video: the reader's info gives the frame rate, the step and stride are resolved from it once
    and carried by `VideoStarted`; a video that cannot be opened ends with its error and nothing else."""
    import vjepa_cli.infer.windows as iw

    _, vids, _ = media
    opened = []
    real = iw.open_video
    monkeypatch.setattr(iw, "open_video", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    cfg = WindowConfig(frames=4, fps=5, stride_seconds=1.2)  # 10 fps video: step 2, stride 1.2 s = 6 sampled
    job = VideoJob(0, vids / "sub" / "b.mp4", vids / "b.safetensors")
    events = list(video_events(job, cfg, 32))
    assert opened == [job.path]
    start, *wins, end = events
    assert isinstance(start, VideoStarted) and end == VideoEnded(job, None)
    assert (start.video.step, start.video.stride, start.video.info.num_frames) == (2, 6, 41)
    assert start.video.num_windows == len(wins) and start.video.indices[:, 0].tolist() == [0, 12, 24, 34]
    assert all(isinstance(w, WindowDecoded) for w in wins)
    bad = VideoJob(1, vids / "missing.mp4", vids / "m.safetensors")
    (ev,) = video_events(bad, cfg, 32)
    assert ev.job == bad and "file not found" in ev.error


def test_extract_opens_each_video_once(media, tmp_path, monkeypatch):
    import av

    from vjepa_cli.config.extract import ExtractConfig
    from vjepa_cli.infer.extract import run_extract

    _, vids, model = media
    opened = []
    real = av.open
    monkeypatch.setattr(av, "open", lambda f, *a, **k: opened.append(Path(str(f)).name) or real(f, *a, **k))
    res = run_extract([vids], tmp_path / "o", ExtractConfig(window=WindowConfig(frames=4)), model_path=model)
    assert res.count("ok") == 3 and sorted(opened) == ["a.mp4", "b.mp4", "short.mp4"]


def _encode_reference(model_path, wins):
    import vjepa_cli

    m = vjepa_cli.load_model(model_path)
    clips = torch.from_numpy(np.stack([w.frames[0] for w in wins]))
    with torch.inference_mode():
        return m.encoder(normalize_clips(clips, channels_last=True))  # (W, N, D)


def test_extract_folder_pooled_and_tokens(media, run_cli, tmp_path):
    d, vids, model = media
    out = tmp_path / "feats"
    args = ["--model", model, "--frames", "4", "--frame-step", "3", "--stride", "2", "--batch-size", "3"]
    r = run_cli("extract", vids, "-o", out, *args, "--json")
    assert r.code == 0, r
    lines = [json.loads(x) for x in r.out.splitlines()]
    assert sorted(x["path"] for x in lines) == sorted(str(p) for p in [vids / "a.mp4", vids / "sub/b.mp4", vids / "short.mp4"])
    assert all(x["status"] == "ok" for x in lines)
    t, meta = load_tensors(out / "sub" / "b.safetensors")  # sub-folders are mirrored
    assert t["features"].shape == (7, 48) and t["timestamps"].shape == (7, 2)
    np.testing.assert_allclose(t["timestamps"].numpy(), window_times(plan_windows(41, 4, 3, 2), 10.0))
    assert meta["source"] == str((vids / "sub" / "b.mp4").resolve()) and json.loads(meta["frame_step"]) == 3
    # the features are the encoder's output on exactly those windows (batches crossed video boundaries)
    wins = _windows(vids / "sub" / "b.mp4", WindowConfig(frames=4, frame_step=3, stride=2))
    ref = _encode_reference(model, wins)
    torch.testing.assert_close(t["features"], ref.mean(1), atol=1e-5, rtol=1e-5)
    # --pool none keeps the tokens; their mean is the pooled feature
    r = run_cli("extract", vids / "sub" / "b.mp4", "-o", tmp_path / "tok.safetensors", *args, "--pool", "none")
    assert r.code == 0, r
    tok, _ = load_tensors(tmp_path / "tok.safetensors")
    assert tok["features"].shape == (7, 8, 48)  # N = (4 frames / tubelet 2) x 2 x 2
    torch.testing.assert_close(tok["features"].mean(1), t["features"], atol=1e-5, rtol=1e-5)


def test_skip_overwrite_and_settings_change(media, run_cli, tmp_path):
    d, vids, model = media
    out = tmp_path / "one.safetensors"
    base = [vids / "a.mp4", "-o", out, "--model", model, "--frames", "4", "--json", "--workers", "0"]
    assert run_cli("extract", *base).code == 0
    before = os.stat(out).st_mtime_ns
    r = run_cli("extract", *base)
    assert r.code == 0 and json.loads(r.out)["status"] == "skipped" and os.stat(out).st_mtime_ns == before
    r = run_cli("extract", *base, "--overwrite")
    assert r.code == 0 and json.loads(r.out)["status"] == "ok" and os.stat(out).st_mtime_ns != before
    r = run_cli("extract", *base, "--stride", "1")  # other settings: refuse rather than keep stale features
    assert r.code == 1 and "--overwrite" in json.loads(r.out)["error"]


def test_stdin_bad_files_and_no_partial_output(media, run_cli, tmp_path, monkeypatch):
    d, vids, model = media
    listing = f"{vids / 'a.mp4'}\n{d / 'broken.mp4'}\n\n{d / 'missing.mp4'}\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(listing))
    out = tmp_path / "o"
    r = run_cli("extract", "-", "-o", out, "--model", model, "--frames", "4", "--json")
    assert r.code == 1
    rows = {os.path.basename(x["path"]): x for x in map(json.loads, r.out.splitlines())}
    assert rows["a.mp4"]["status"] == "ok"
    assert rows["broken.mp4"]["status"] == "failed" and rows["missing.mp4"]["status"] == "failed"
    assert "not found" in rows["missing.mp4"]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["a.safetensors"]  # nothing partial, no temp files
    assert "1 failed" not in r.err and "2 failed" in r.err


def test_model_required_and_output_rules(media, run_cli, tmp_path, monkeypatch):
    d, vids, model = media
    monkeypatch.delenv("VJEPA_MODEL", raising=False)
    r = run_cli("extract", vids / "a.mp4", "-o", tmp_path / "x.safetensors")
    assert r.code == 1 and "no model given" in r.err and "vjepa convert" in r.err and "Traceback" not in r.err
    monkeypatch.setenv("VJEPA_MODEL", str(model))
    r = run_cli("extract", vids / "a.mp4", vids / "short.mp4", "-o", tmp_path / "x.safetensors")
    assert r.code == 1 and "give -o a folder" in r.err
    r = run_cli("extract", vids / "a.mp4", "-o", tmp_path / "y.safetensors", "--size", "40")
    assert r.code == 1 and "multiple of the model's patch size 16" in r.err and not (tmp_path / "y.safetensors").exists()
    r = run_cli("extract", vids / "a.mp4", "-o", tmp_path / "x.safetensors", "--frames", "4", "--views", "2")
    assert r.code == 0, r
    t, meta = load_tensors(tmp_path / "x.safetensors")
    assert t["features"].shape[1:] == (2, 48) and meta["model"] == str(model)  # [W, views, D], model from $VJEPA_MODEL


def test_manifest_input(media, run_cli, tmp_path):
    d, vids, model = media
    (vids / "list.csv").write_text("path,label\na.mp4,0\nsub/b.mp4,1\n")  # our CSV; paths relative to it
    (vids / "list.txt").write_text("a.mp4 0\nsub/b.mp4 1\n")  # official `path label` lines
    for name in ("list.csv", "list.txt"):
        out = tmp_path / name
        r = run_cli("extract", vids / name, "-o", out, "--model", model, "--frames", "4", "--json")
        assert r.code == 0, r
        assert sorted(p.name for p in out.iterdir()) == ["a.safetensors", "b.safetensors"]
