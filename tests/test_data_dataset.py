"""VideoClipDataset determinism and bad-input handling; StepBatchSampler; the pretraining loader."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from _data_helpers import shared_synth, write_corrupt_files

from vjepa_cli.config import from_dict
from vjepa_cli.config.data import DataConfig, SynthSpec
from vjepa_cli.data.dataset import FailureLog, VideoClipDataset, collate_clips
from vjepa_cli.data.manifest import ManifestRow, read_manifest
from vjepa_cli.data.sampler import StepBatchSampler, build_pretrain_loader
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
