"""`log_with`: Accelerate's trackers next to metrics.jsonl, checked at start; TensorBoard's own reader sees
exactly the scalars metrics.jsonl holds."""

from __future__ import annotations

import pytest

from tests.test_pretrain import _cache, tiny  # noqa: F401  (_cache: the synth cache and one thread, autouse)
from vjepa_cli.errors import VjepaError
from vjepa_cli.train.metrics import read_metrics
from vjepa_cli.train.pretrain import run_pretrain
from vjepa_cli.train.trackers import Trackers, check_trackers


def test_unknown_or_missing_tracker_fails_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(VjepaError, match="unknown tracker 'tensorbored'"):
        run_pretrain(tiny("log_with=[tensorbored]"), tmp_path / "a")
    monkeypatch.setattr("accelerate.utils.is_wandb_available", lambda: False)
    with pytest.raises(VjepaError, match="log_with: wandb needs the wandb package"):
        check_trackers(["wandb"])
    assert not (tmp_path / "a").exists()


def test_tensorboard_receives_every_logged_scalar(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_pretrain(tiny("steps=4", "log_with=[tensorboard]"), out)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert {"loss", "lr", "target_std"} <= set(acc.Tags()["scalars"])
    for key in ("loss", "lr"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3, 4]
        assert [e.value for e in events] == pytest.approx([r[key] for r in records], rel=1e-6)


def test_config_is_flattened_for_the_trackers(tmp_path):
    pytest.importorskip("tensorboard")
    t = Trackers(["tensorboard"], tmp_path, "r", {"optim": {"lr": 1e-3, "betas": (0.9, 0.95)}, "seed": 3})
    t.log({"step": 1, "loss": 0.5, "note": "text", "flag": True})  # only numbers go to the trackers
    t.close()
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents*"))


def test_probe_sends_its_curves_to_the_trackers(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests._probe_helpers import TINY_SETS, colour_manifests, tiny_model
    from vjepa_cli.config.probe import load_probe_config
    from vjepa_cli.eval.probe.run import run_probe

    train, val = colour_manifests(tmp_path)
    cfg = load_probe_config("manifest", sets=[*TINY_SETS, "log_with=[tensorboard]"])
    res = run_probe(cfg, model=tiny_model(tmp_path / "m.safetensors"), train=train, val=val,
                    output_dir=tmp_path / "out")
    acc = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("train_loss")] == pytest.approx([h["train_loss"] for h in res.history])
    assert acc.Scalars("best_val_top1")[0].value == pytest.approx(res.best["val_top1"])
