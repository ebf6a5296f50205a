"""Probe library: task loaders on each dataset's layout, heads and grid training, view averaging, metrics."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from vjepa_cli.config.probe import TASKS, ProbeConfig, ProbeHeadConfig, ProbeOptimConfig, load_probe_config
from vjepa_cli.errors import VjepaError
from vjepa_cli.eval.probe.heads import HeadGrid, build_head, classification_metrics, train_grid
from vjepa_cli.eval.probe.tasks import TASK_LOADERS, load_task


def _touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


# ----------------------------------------------------------------------------------------------- loaders


def test_ssv2_layout(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "labels.json").write_text(json.dumps({"Holding something": "0", "Pushing something left": "1"}))
    train = [{"id": "11", "label": "holding a cup", "template": "Holding [something]", "placeholders": ["a cup"]},
             {"id": "12", "label": "pushing pen left", "template": "Pushing [something] left", "placeholders": ["pen"]},
             {"id": "13", "label": "holding x", "template": "Holding [something]", "placeholders": ["x"]}]
    val = [{"id": "21", "label": "pushing a box left", "template": "Pushing [something] left", "placeholders": ["box"]}]
    (tmp_path / "labels" / "train.json").write_text(json.dumps(train))
    (tmp_path / "labels" / "validation.json").write_text(json.dumps(val))
    for i in ("11", "12", "21"):  # video 13 is missing
        _touch(tmp_path / "20bn-something-something-v2" / f"{i}.webm")
    d = load_task("ssv2", tmp_path)
    assert d.classes == ["Holding something", "Pushing something left"]
    assert [(p.split("/")[-1], y) for p, y in d.train] == [("11.webm", 0), ("12.webm", 1)]
    assert [(p.split("/")[-1], y) for p, y in d.val] == [("21.webm", 1)]
    assert d.missing == 1 and any("not found" in n for n in d.notes)

    (tmp_path / "labels" / "train.json").write_text(json.dumps({"11": "Holding something"}))  # wrong layout
    with pytest.raises(VjepaError, match="not the SSv2 layout"):
        load_task("ssv2", tmp_path)


def _kinetics_folder(root):
    ann = root / "annotations"
    ann.mkdir()
    header = ["label", "youtube_id", "time_start", "time_end", "split"]
    rows = {"train.csv": [["riding bike", "aaa", 10, 20, "train"], ["abseiling", "bbb", 0, 10, "train"]],
            "validate.csv": [["riding bike", "ccc", 5, 15, "validate"]]}
    for name, rs in rows.items():
        with open(ann / name, "w", newline="") as f:
            csv.writer(f).writerows([header, *rs])
    _touch(root / "train" / "riding bike" / "aaa_000010_000020.mp4")  # class-folder layout
    _touch(root / "train" / "bbb_000000_000010.mp4")  # flat layout
    _touch(root / "val" / "ccc_000005_000015.mp4")
    return ann


@pytest.mark.parametrize("task", ["k400", "k600", "k700"])
def test_kinetics_layout(tmp_path, task):
    ann = _kinetics_folder(tmp_path)
    d = load_task(task, tmp_path)
    assert d.classes == ["abseiling", "riding bike"]  # sorted, as the official class index
    assert sorted(y for _, y in d.train) == [0, 1] and [y for _, y in d.val] == [1]
    (ann / "train.csv").write_text("youtube_id,label\naaa,riding bike\n")
    with pytest.raises(VjepaError, match="not the Kinetics layout"):
        load_task(task, tmp_path)


def test_diving48_layout(tmp_path):
    tr = [{"vid_name": "A_1", "label": 3, "start_frame": 0, "end_frame": 40}, {"vid_name": "A_2", "label": 0}]
    te = [{"vid_name": "B_1", "label": 3}]
    (tmp_path / "Diving48_V2_train.json").write_text(json.dumps(tr))
    (tmp_path / "Diving48_V2_test.json").write_text(json.dumps(te))
    (tmp_path / "Diving48_vocab.json").write_text(json.dumps([["Back", "15som", "NoTwis", "PIKE"]] * 48))
    for v in ("A_1", "A_2", "B_1"):
        _touch(tmp_path / "rgb" / f"{v}.mp4")
    d = load_task("diving48", tmp_path)
    assert len(d.classes) == 48 and d.classes[0] == "Back / 15som / NoTwis / PIKE"
    assert sorted(y for _, y in d.train) == [0, 3] and d.val[0][1] == 3
    (tmp_path / "Diving48_V2_train.json").write_text(json.dumps([{"name": "A_1"}]))
    with pytest.raises(VjepaError, match="not the Diving48 layout"):
        load_task("diving48", tmp_path)


def test_image_folders_and_image_clip(tmp_path):
    from vjepa_cli.data.media import write_png
    from vjepa_cli.eval.probe.features import read_sample

    for split in ("train", "val"):
        for c, colour in (("cat", 0), ("dog", 1)):
            img = np.zeros((40, 48, 3), np.uint8)
            img[..., colour] = 255
            (tmp_path / split / c).mkdir(parents=True)
            write_png(tmp_path / split / c / "a.png", img)
    d = load_task("in1k", tmp_path)
    assert d.images and d.classes == ["cat", "dog"] and len(d.train) == 2 and len(d.val) == 2
    cfg = ProbeConfig(task="in1k")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, frames=4, resolution=32, views=2, segments=1))
    clip = read_sample(d.val[1][0], cfg, False, np.random.default_rng(0), image=True)
    assert clip.shape == (2, 1, 3, 4, 32, 32)  # (V, S, C, T, R, R)
    assert (clip[:, :, 1] > 250).all() and (clip[:, :, 0] < 5).all()  # the dog image, repeated to 4 frames


def test_manifest_and_bad_inputs(tmp_path):
    from vjepa_cli.data.manifest import ManifestRow, write_manifest

    a, b = _touch(tmp_path / "a.mp4"), _touch(tmp_path / "b.mp4")
    write_manifest(tmp_path / "tr.csv", [ManifestRow(str(a), 1), ManifestRow(str(b), 0)])
    write_manifest(tmp_path / "va.csv", [ManifestRow(str(b), 1), ManifestRow(str(tmp_path / "gone.mp4"), 0)])
    d = load_task("manifest", None, tmp_path / "tr.csv", tmp_path / "va.csv")
    assert d.classes == ["0", "1"] and len(d.train) == 2 and d.val == [(str(b), 1)] and d.missing == 1
    write_manifest(tmp_path / "nolabel.csv", [ManifestRow(str(a))])
    with pytest.raises(VjepaError, match="no label"):
        load_task("manifest", None, tmp_path / "nolabel.csv", tmp_path / "va.csv")
    with pytest.raises(VjepaError, match="needs --train and --val"):
        load_task("manifest", None)
    with pytest.raises(VjepaError, match="data root not found"):
        load_task("k400", tmp_path / "nope")
    with pytest.raises(VjepaError, match="needs --data-root"):
        load_task("ssv2", None)
    (tmp_path / "in" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "in" / "val" / "cat").mkdir(parents=True)
    with pytest.raises(VjepaError, match="no training videos"):  # a label with no videos at all
        load_task("in1k", tmp_path / "in")


def test_synth_task_generated_on_first_use(tmp_path):
    d = load_task("synth-motion", None, synth_cache=tmp_path, synth_sizes=(16, 4))
    assert len(d.classes) == 16 and len(d.train) == 16 and len(d.val) == 4
    assert sorted(y for _, y in d.train) == list(range(16))  # balanced: video i has label i % 16
    again = load_task("synth-motion", None, synth_cache=tmp_path, synth_sizes=(16, 4))
    assert again.train == d.train  # cached, not regenerated


# ----------------------------------------------------------------------------------------------- registry


def test_every_task_has_exactly_one_loader():
    """`TASKS` (what the config and --task accept) and the registry (what can be read) are the same names."""
    assert len(set(TASKS)) == len(TASKS)
    assert sorted(TASK_LOADERS) == sorted(TASKS)
    assert all(callable(load) for load in TASK_LOADERS.values())


def test_unregistered_task_is_refused_not_read_as_kinetics(tmp_path, monkeypatch):
    """A name the config accepts but the registry lacks is one clear error, never another family's layout."""
    import vjepa_cli.eval.probe.tasks.registry as registry

    _kinetics_folder(tmp_path)  # a folder any fallback to the Kinetics loader would read happily
    monkeypatch.setattr("vjepa_cli.config.probe.TASKS", (*TASKS, "k800"))
    assert load_probe_config("k800").task == "k800"  # the config layer accepts it...
    with pytest.raises(VjepaError, match="unknown task 'k800'") as e:  # ...the registry does not guess
        load_task("k800", tmp_path)
    assert "valid: ssv2, k400" in str(e.value)
    assert "k800" not in registry.TASK_LOADERS


@pytest.mark.parametrize("task, hint", [("kinetics", "(valid: ssv2,"), ("k40", "did you mean 'k400'? valid: ssv2,")])
def test_unknown_task_is_one_line_listing_valid_tasks(task, hint):
    with pytest.raises(VjepaError, match=f"^unknown task '{task}'") as e:
        load_probe_config(task)
    assert hint in str(e.value) and "synth-shapes" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="valid: ssv2"):
        ProbeConfig(task=task)


def test_probe_config_uses_the_builtin_recipe_of_its_task():
    assert load_probe_config("synth-motion") == load_probe_config("synth-motion", "probe/synth-motion")
    assert load_probe_config("manifest", None, ["optim.epochs=2"]).optim.epochs == 2


# ----------------------------------------------------------------------------------------------- heads


def _separable(n, C=3, N=6, D=16, seed=0):
    centres = torch.randn(C, D, generator=torch.Generator().manual_seed(123)) * 3  # shared by train and val
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    x = torch.randn(n, N, D, generator=g) + centres[y][:, None]
    return x, y


@pytest.mark.parametrize("kind", ["linear", "attentive", "attentive-v2"])
def test_probe_learns_separable_features(kind):
    x, y = _separable(96)
    xv, yv = _separable(48, seed=1)
    opt = ProbeOptimConfig(epochs=15, batch_size=16, lrs=(3e-3,), wds=(0.01,))
    g = torch.Generator().manual_seed(0)
    head = build_head(ProbeHeadConfig(kind=kind, depth=2, num_heads=2), 16, 3, g)
    grid = HeadGrid([head], opt.grid, opt, total_steps=15 * 6)
    train_grid(grid, lambda e: (x, y), 15, 16, g)
    acc = float((grid.predict(xv[:, None])[0].argmax(-1) == yv).float().mean())
    assert acc > 0.9, acc


def test_heads_trained_together_equal_heads_trained_alone():
    x, y = _separable(40)
    opt = ProbeOptimConfig(epochs=3, batch_size=8, lrs=(1e-2, 1e-3), wds=(0.0, 0.4), warmup_epochs=1, grad_clip=0.05)
    g = torch.Generator().manual_seed(0)
    heads = [build_head(ProbeHeadConfig(kind="attentive", num_heads=2), 16, 3, g) for _ in opt.grid]
    alone = [copy.deepcopy(h) for h in heads]
    together = HeadGrid(heads, opt.grid, opt, total_steps=15, warmup_steps=5)
    train_grid(together, lambda e: (x, y), 3, 8, torch.Generator().manual_seed(5))
    for h, hp in zip(alone, opt.grid, strict=True):
        one = HeadGrid([h], [hp], opt, total_steps=15, warmup_steps=5)
        train_grid(one, lambda e: (x, y), 3, 8, torch.Generator().manual_seed(5))
    for a, b in zip(alone, together.heads, strict=True):
        for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=n)
    assert not torch.allclose(alone[0].linear.weight, alone[3].linear.weight)  # the grid really differs


def test_prediction_is_mean_of_view_softmax():
    g = torch.Generator().manual_seed(0)
    head = build_head(ProbeHeadConfig(kind="attentive", num_heads=2), 16, 4, g)
    grid = HeadGrid([head], [(1e-3, 0.0)], ProbeOptimConfig(), total_steps=1)
    feats = torch.randn(5, 3, 7, 16, generator=g)  # (n, V, N, D)
    probs = grid.predict(feats, batch_size=2)[0]
    with torch.no_grad():
        want = torch.stack([head(feats[:, v]).softmax(-1) for v in range(3)]).mean(0)
    torch.testing.assert_close(probs, want)


def test_lr_schedule_cosine_and_constant_wd():
    head = torch.nn.Linear(2, 2)
    opt = ProbeOptimConfig(lrs=(1.0,), wds=(0.5,), warmup_epochs=0)
    grid = HeadGrid([head], opt.grid, opt, total_steps=4)
    seen = []
    for _ in range(4):
        grid._schedule()
        seen.append((grid.opt.param_groups[0]["lr"], grid.opt.param_groups[0]["weight_decay"]))
        grid.step_num += 1
    assert [round(lr, 6) for lr, _ in seen] == [1.0, round(0.5 * (1 + np.cos(np.pi / 4)), 6), 0.5, round(0.5 * (1 + np.cos(3 * np.pi / 4)), 6)]
    assert all(wd == 0.5 for _, wd in seen)
    assert grid.opt.param_groups[1]["weight_decay"] == 0.0  # biases are not decayed


def test_classification_metrics():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1, 1, 1])
    m = classification_metrics(probs, labels, 3)
    assert m["top1"] == 0.5  # rows 0 and 2 right
    assert m["confusion"].tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert m["per_class"][0] == 1.0 and abs(m["per_class"][1] - 1 / 3) < 1e-9 and np.isnan(m["per_class"][2])
    assert m["mean_class_acc"] == pytest.approx(2 / 3)
    assert m["top5"] == 1.0  # k = min(5, C) = 3
    m2 = classification_metrics(probs, labels, 3)
    assert classification_metrics(probs[:, [0, 1, 2]], labels, 3)["top1"] == m2["top1"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        ProbeOptimConfig(lrs=())
    with pytest.raises(ValueError):
        ProbeHeadConfig(layers=(0,))
    with pytest.raises(ValueError):
        ProbeConfig(task="nope")
    assert len(ProbeOptimConfig().grid) == 20  # the V-JEPA 2 grid: 5 lr x 4 wd
