"""VideoClipDataset determinism and bad-input handling; StepBatchSampler; the pretraining loader."""

from __future__ import annotations

import gc
from collections import Counter

import decord
import numpy as np
import pytest
import torch
from _data_helpers import shared_synth, write_corrupt_files
from test_data_transforms import reference_eval_views, reference_train_transform

from vjepa_cli.config import from_dict
from vjepa_cli.config.data import DataConfig, SynthSpec
from vjepa_cli.data.dataset import FailureLog, VideoClipDataset, collate_clips, distinct_runs, sample_rng
from vjepa_cli.data.manifest import ManifestRow, read_manifest
from vjepa_cli.data.media import open_video, probe_video, read_frames, write_video
from vjepa_cli.data.sampler import StepBatchSampler, build_pretrain_loader
from vjepa_cli.data.sampling import clip_indices, resolve_frame_step
from vjepa_cli.errors import VjepaError

CFG = DataConfig(frames_per_clip=4, frame_step=2, crop_size=32, num_workers=0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return shared_synth(tmp_path_factory)


def test_sample_shape_label_and_exact_repeat(synth):
    ds = VideoClipDataset(CFG, [synth.train_manifest], train=True, seed=3)
    rows = read_manifest(synth.train_manifest)
    s = ds[(7, 2)]
    assert s["clip"].shape == (3, 4, 32, 32) and s["clip"].dtype == torch.uint8
    assert (s["label"], s["index"], s["step"], s["failures"], s["dataset"]) == (rows[2].label, 2, 7, [], 0)
    assert torch.equal(ds[(7, 2)]["clip"], s["clip"])  # a pure function of (seed, step, index)
    others = [ds[(k, 2)]["clip"] for k in range(8)]
    assert sum(not torch.equal(o, s["clip"]) for o in others) >= 6  # other steps: other crops/starts
    assert not torch.equal(VideoClipDataset(CFG, [synth.train_manifest], True, seed=4)[(7, 2)]["clip"], s["clip"])
    assert ds[2]["step"] == -1


def test_eval_is_deterministic_and_multi_view(synth):
    cfg = DataConfig(frames_per_clip=4, frame_step=2, crop_size=32, num_clips=2, eval_views=3)
    ds = VideoClipDataset(cfg, [synth.val_manifest], train=False)
    a, b = ds[0]["clip"], ds[(5, 0)]["clip"]
    assert a.shape == (6, 3, 4, 32, 32) and torch.equal(a, b)


def test_bad_videos_are_replaced_and_reported(tmp_path, synth):
    good = read_manifest(synth.train_manifest)[:2]
    bad = write_corrupt_files(tmp_path, __import__("pathlib").Path(good[0].path))
    rows = [ManifestRow(str(p), 99) for p in bad.values()] + good
    ds = VideoClipDataset(CFG, [rows], train=True, seed=0)
    log = FailureLog()
    for index in range(len(bad)):
        s = ds[(0, index)]
        assert s["label"] != 99 and s["index"] >= len(bad) and len(s["failures"]) >= 1
        assert s["failures"][0][0] == str(list(bad.values())[index])
        log.update(s["failures"])
    assert set(log.files) >= {str(p) for p in bad.values()}
    assert "file not found" in log.summary(max_files=10) and log.count >= len(bad)
    clone = FailureLog()
    clone.load_state_dict(log.state_dict())
    assert clone.to_dict() == log.to_dict()


def test_all_bad_raises_after_bounded_attempts(tmp_path):
    rows = [ManifestRow(str(tmp_path / f"gone{i}.mp4"), 0) for i in range(3)]
    ds = VideoClipDataset(DataConfig(max_retries=4, crop_size=32), [rows], train=True)
    with pytest.raises(VjepaError, match="5 attempts"):
        ds[(0, 1)]


def test_skip_short_when_not_padding(synth):
    cfg = DataConfig(frames_per_clip=16, frame_step=4, crop_size=32, pad_short=False, max_retries=2)
    ds = VideoClipDataset(cfg, [synth.train_manifest], train=True)
    with pytest.raises(VjepaError, match="too short"):
        ds[(0, 0)]
    padded = VideoClipDataset(DataConfig(frames_per_clip=16, frame_step=4, crop_size=32), [synth.train_manifest], True)
    assert padded[(0, 0)]["failures"] == []


def test_sampler_weights_ranks_and_resume():
    s = StepBatchSampler([10, 1000], [3.0, 1.0], batch_size=64, seed=1, num_steps=200)
    counts = Counter(i < 10 for b in s for _, i in b)
    share = counts[True] / sum(counts.values())
    assert abs(share - 0.75) < 0.03  # w_d / n_d per sample: dataset 0 gets 3/4 of draws despite 10 videos
    r0 = StepBatchSampler([10, 1000], None, 4, seed=1, rank=0, world_size=2)
    r1 = StepBatchSampler([10, 1000], None, 4, seed=1, rank=1, world_size=2)
    g = r0.global_batch(5)
    assert [i for _, i in r0.batch(5)] == list(g[:4]) and [i for _, i in r1.batch(5)] == list(g[4:])
    it = iter(StepBatchSampler([50], None, 3, seed=2))
    first = [next(it) for _ in range(6)]
    resumed = StepBatchSampler([50], None, 3, seed=2)
    resumed.load_state_dict({"step": 4})
    assert next(iter(resumed)) == first[4] and first[4][0][0] == 4
    assert len(StepBatchSampler([5], None, 2, 0, start_step=3, num_steps=10)) == 7


def test_loader_is_independent_of_worker_count(synth):
    ds = VideoClipDataset(CFG, [synth.train_manifest], train=True, seed=0)
    keys = StepBatchSampler(ds.sizes, None, 3, seed=0).batch(11)
    ref = collate_clips([ds[k] for k in keys])
    cfg = DataConfig(datasets=(str(synth.train_manifest),), frames_per_clip=4, frame_step=2, crop_size=32)
    loader, sampler = build_pretrain_loader(cfg, batch_size=3, seed=0, num_workers=2, start_step=11, num_steps=13)
    batches = list(loader)
    assert len(batches) == 2 and torch.equal(batches[0]["clip"], ref["clip"])
    assert batches[0]["clip"].shape == (3, 3, 4, 32, 32) and batches[1]["step"].tolist() == [12] * 3
    assert torch.equal(batches[0]["label"], ref["label"])


def test_synth_spec_in_config_is_generated_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path / "cache"))
    cfg = from_dict(DataConfig, {"synth": {"task": "shapes", "videos": 6, "frames": 4, "size": 32},
                                 "frames_per_clip": 4, "frame_step": 1, "crop_size": 16})
    assert cfg.synth == SynthSpec(task="shapes", videos=6, frames=4, size=32)
    loader, _ = build_pretrain_loader(cfg, batch_size=2, seed=0, num_workers=0, num_steps=1)
    (batch,) = list(loader)
    assert batch["clip"].shape == (2, 3, 4, 16, 16)
    assert len(list((tmp_path / "cache" / "synth").iterdir())) == 1


def test_data_config_validation():
    with pytest.raises(ValueError, match="only one"):
        DataConfig(frame_step=2, fps=4.0)
    with pytest.raises(ValueError, match="weights"):
        DataConfig(datasets=("a.csv",), weights=(1.0, 2.0))
    with pytest.raises(VjepaError, match="unknown key"):
        from_dict(DataConfig, {"frame_stpe": 2})
    cfg = from_dict(DataConfig, {"datasets": ["a.csv", {"path": "b.csv", "weight": 2.0}]})
    assert [(s.path, s.weight) for s in cfg.dataset_specs()] == [("a.csv", 1.0), ("b.csv", 2.0)]
    assert np.isclose(sum(DataConfig(datasets=("a", "b"), weights=(1.0, 3.0)).weights), 4.0)


def test_worker_error_reaches_the_main_process_as_one_line(tmp_path):
    rows = [ManifestRow(str(tmp_path / f"gone{i}.mp4"), 0) for i in range(2)]
    write = __import__("vjepa_cli.data.manifest", fromlist=["write_manifest"]).write_manifest
    m = write(tmp_path / "m.csv", rows)
    cfg = DataConfig(datasets=(str(m),), max_retries=1, crop_size=32)
    loader, _ = build_pretrain_loader(cfg, batch_size=1, seed=0, num_workers=1, num_steps=1)
    with pytest.raises(VjepaError) as e:
        next(iter(loader))
    assert "Traceback" not in str(e.value) and str(e.value).startswith("no readable video found in 2 attempts")


@pytest.fixture(scope="module")
def noise_video(tmp_path_factory):
    """48 frames of 64 x 48 moving noise, keyframe every 8 frames: clips without repeated frames."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 112, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("noise") / "noise.mp4"
    write_video(path, np.stack([base[:, t:t + 64] for t in range(48)]), fps=8, keyint=8)
    return path


def reference_clip(ds: VideoClipDataset, step: int, index: int) -> torch.Tensor:
    """The sample decoded the plain way: decord `get_batch` of every index (repeats included) + `.asnumpy()`
    (PyAV for the pyav backend), then the plain transforms of tests/test_data_transforms.py."""
    cfg, path = ds.cfg, ds.rows[index].path
    rng = sample_rng(ds.seed, step, index)
    if cfg.video_backend == "pyav":
        info = probe_video(path, "pyav", check_decode=False)
        n, fps = info.num_frames, info.fps
    else:
        vr = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
        n, fps = len(vr), vr.get_avg_fps()
    fstp = resolve_frame_step(fps, cfg.frames_per_clip, cfg.frame_step, cfg.fps, cfg.duration)
    clips = clip_indices(n, cfg.frames_per_clip, fstp, cfg.num_clips, rng if ds.train else None, not ds.train)
    idx = np.concatenate(clips)
    frames = read_frames(path, idx, "pyav") if cfg.video_backend == "pyav" else vr.get_batch(list(idx)).asnumpy()
    out = []
    for k in range(cfg.num_clips):
        f = frames[k * cfg.frames_per_clip:(k + 1) * cfg.frames_per_clip]
        if ds.train:
            out.append(reference_train_transform(f, cfg.crop_size, cfg.random_resize_scale,
                                                 cfg.random_resize_aspect_ratio, cfg.horizontal_flip, rng))
        else:
            out.extend(reference_eval_views(f, cfg.crop_size, cfg.eval_views))
    return out[0] if len(out) == 1 else torch.stack(out)


@pytest.mark.parametrize("name,train,kw", [
    ("padded", True, dict(frames_per_clip=16, frame_step=4, crop_size=32)),  # 16-frame videos: 4 distinct frames
    ("two_clips_fps", True, dict(frames_per_clip=8, fps=4.0, crop_size=24, num_clips=2)),  # step from the frame rate
    ("eval_overlap", False, dict(frames_per_clip=8, frame_step=4, crop_size=32, num_clips=3, eval_views=3)),
    ("pyav", True, dict(frames_per_clip=8, frame_step=3, crop_size=32, video_backend="pyav")),
    ("noise", True, dict(frames_per_clip=8, frame_step=2, crop_size=40, num_clips=2)),  # no repeats, GOP 8
    ("noise_eval", False, dict(frames_per_clip=16, frame_step=4, crop_size=32, num_clips=2, eval_views=2)),
])
def test_samples_are_bit_identical_to_the_plain_pipeline(synth, noise_video, name, train, kw):
    manifest = [[ManifestRow(str(noise_video), 0)]] if name.startswith("noise") else [synth.train_manifest]
    ds = VideoClipDataset(DataConfig(**kw), manifest, train=train, seed=11)
    for step in range(4):
        index = step % len(ds)
        clip = ds[(step, index)]["clip"]
        assert clip.is_contiguous() and torch.equal(clip, reference_clip(ds, step, index))


def test_distinct_runs():
    wanted, pos = distinct_runs(np.array([0, 5, 10, 15, 15, 15]))
    assert wanted.tolist() == [0, 5, 10, 15] and pos.tolist() == [0, 1, 2, 3, 3, 3]
    wanted, pos = distinct_runs(np.array([3, 3, 1, 1, 3]))  # order kept, only neighbours merged
    assert wanted.tolist() == [3, 1, 3] and pos.tolist() == [0, 0, 1, 1, 2]
    wanted, pos = distinct_runs(np.array([4, 2, 9]))
    assert wanted.tolist() == [4, 2, 9] and pos is None


def test_decord_batch_outlives_its_reader(noise_video):
    expect = decord.VideoReader(str(noise_video), num_threads=1).get_batch([1, 30, 47]).asnumpy()
    reader = open_video(noise_video, "decord")
    got = reader.get_batch(np.array([1, 30, 47]))
    reader.close()
    del reader
    gc.collect()
    junk = [np.full(expect.shape, 7, np.uint8) for _ in range(4)]  # reuse of freed memory would show
    assert junk[0].sum() and got.flags.c_contiguous and np.array_equal(got, expect)
