"""`vjepa probe` end to end on tiny data: outputs, --json, cache reuse, random-init baseline, user errors."""

from __future__ import annotations

import json

import pytest

from tests._probe_helpers import TINY_SETS, colour_manifests, tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    train, val = colour_manifests(root)
    return root, tiny_model(root / "m.safetensors"), train, val


def _sets(drop: str = "-"):
    return [a for s in TINY_SETS if not s.startswith(drop) for a in ("--set", s)]


def test_probe_manifest_end_to_end(run_cli, tiny, tmp_path):
    root, model, train, val = tiny
    out = tmp_path / "out"
    args = ["probe", "--task", "manifest", "--train", train, "--val", val, "-m", model, "-o", out,
            "--cache", tmp_path / "cache", "--json", *_sets()]
    r = run_cli(*args)
    assert r.code == 0, r
    rec = json.loads(r.out.strip().splitlines()[-1])
    assert rec["num_train"] == 12 and rec["num_val"] == 6 and rec["classes"] == 2 and rec["skipped"] == 0
    assert rec["val_top1"] >= 0.8  # colour is trivially decodable even from a random tiny encoder
    assert not rec["cache_hit"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["heads"]) == 2 and len(metrics["confusion"]) == 2
    assert sum(map(sum, metrics["confusion"])) == 6
    from vjepa_cli.data.media import read_image
    from vjepa_cli.io.tensors import load_tensors, meta_json

    assert read_image(out / "confusion.png").ndim == 3
    assert read_image(out / "curves.png").ndim == 3
    hist = metrics["history"]  # per epoch; the last epoch's validation top-1 is the one the grid reports
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4] and all(len(h["val_top1"]) == 2 for h in hist)
    assert hist[-1]["val_top1"][metrics["heads"].index(metrics["best"])] == pytest.approx(rec["val_top1"])
    tensors, meta = load_tensors(out / "probe.safetensors")
    assert meta_json(meta, "classes") == ["0", "1"] and meta_json(meta, "task") == "manifest"
    assert "linear.weight" in tensors

    again = run_cli(*args)  # the same features come from the cache: same accuracy
    rec2 = json.loads(again.out.strip().splitlines()[-1])
    assert rec2["cache_hit"] and rec2["val_top1"] == rec["val_top1"]


def test_probe_skips_unreadable_videos_and_random_init(run_cli, tiny, tmp_path):
    from vjepa_cli.data.manifest import ManifestRow, read_manifest, write_manifest

    root, model, train, val = tiny
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    rows = read_manifest(train) + [ManifestRow(str(bad), 1)]
    write_manifest(tmp_path / "train.csv", rows)
    r = run_cli("probe", "--task", "manifest", "--train", tmp_path / "train.csv", "--val", val, "-m", model,
                "-o", tmp_path / "o", "--probe", "linear", "--layers", "1,-1", "--random-init", "--json", *_sets("probe.kind"))
    assert r.code == 0, r
    rec = json.loads(r.out.strip().splitlines()[-1])
    assert rec["skipped"] == 1 and rec["num_train"] == 12 and rec["probe"] == "linear"
    assert any("unreadable" in n for n in rec["notes"])


def test_probe_table_output(run_cli, tiny, tmp_path):
    root, model, train, val = tiny
    r = run_cli("probe", "--task", "manifest", "--train", train, "--val", val, "-m", model, "-o", tmp_path / "o",
                "--no-cache", *_sets())
    assert r.code == 0, r
    assert "val top-1" in r.out and "best: val top-1" in r.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "k400", "--data-root", "/nonexistent/kinetics"], "data root not found"),
        (["--task", "kinetics"], "unknown task 'kinetics'"),
        (["--task", "ssv2"], "needs --data-root"),
        (["--task", "manifest"], "needs --train and --val"),
        (["--task", "manifest", "--cache", "c", "--no-cache"], "contradict"),
        (["--task", "manifest", "--layers", "a,b"], "comma-separated"),
        (["--task", "manifest", "--set", "optim.lrz=1"], "unknown key 'optim.lrz'"),
    ],
)
def test_probe_user_errors(run_cli, tiny, args, message):
    root, model, train, val = tiny
    r = run_cli("probe", "-m", model, *args)
    assert r.code == 1, r
    assert message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) <= 3


def test_probe_wrong_layout_message(run_cli, tiny, tmp_path):
    root, model, _, _ = tiny
    (tmp_path / "labels.json").write_text('{"Holding something": "0"}')
    (tmp_path / "train.json").write_text('{"not": "a list"}')
    (tmp_path / "validation.json").write_text("[]")
    r = run_cli("probe", "--task", "ssv2", "--data-root", tmp_path, "-m", model)
    assert r.code == 1 and "not the SSv2 layout" in r.err, r


def test_random_init_seed_defaults_to_the_recorded_pretraining_seed(run_cli, tiny, tmp_path):
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.eval.probe.run import recorded_seed
    from vjepa_cli.models.load import build_models, save_model_file

    root, model, train, val = tiny
    cfg = ModelConfig(arch="vit_tiny", embed_dim=32, depth=2, num_heads=2, num_frames=4, img_size=32,
                      pred_embed_dim=16, pred_depth=1, pred_num_heads=2)
    seeded = save_model_file(tmp_path / "s.safetensors", *build_models(cfg, True), cfg, {"seed": 5})
    assert recorded_seed(seeded) == 5 and recorded_seed(model) is None
    base = ["probe", "--task", "manifest", "--train", train, "--val", val, "--probe", "linear", *_sets("probe.kind")]
    r = run_cli(*base, "-m", seeded, "-o", tmp_path / "a", "--random-init")
    assert r.code == 0, r
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["model_id"].endswith("-random5")
    r = run_cli(*base, "-m", seeded, "-o", tmp_path / "b", "--random-init", "--init-seed", "2")
    assert r.code == 0, r
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["model_id"].endswith("-random2")
    r = run_cli(*base, "-m", seeded, "-o", tmp_path / "c", "--init-seed", "2")
    assert r.code == 1 and "--random-init" in r.err and "Traceback" not in r.err


# ------------------------------------------------------------------- a failed run leaves nothing (issue 18)


def _snapshot(folder):
    """Every file under `folder` with its bytes (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() or not any(p.iterdir())}


def _failing_start(kind, tmp_path, model, train, val):
    """Arguments of a `vjepa probe` run that fails before training, and the message it fails with."""
    from vjepa_cli.data.manifest import ManifestRow, write_manifest

    if kind == "no model":
        return ["--task", "manifest", "--train", train, "--val", val, "-m", tmp_path / "gone.safetensors"], "model not found"
    if kind == "bad data root":
        return ["--task", "k400", "--data-root", tmp_path / "no-such-root", "-m", model], "data root not found"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    bad = write_manifest(tmp_path / "bad.csv", [ManifestRow(str(broken), 0), ManifestRow(str(broken), 1)])
    return ["--task", "manifest", "--train", bad, "--val", val, "-m", model], "no readable training videos"


@pytest.mark.parametrize("kind", ["no model", "bad data root", "unreadable task data"])
@pytest.mark.parametrize("existed", [False, True])
def test_failed_start_leaves_the_output_folder_as_it_was(run_cli, tiny, tmp_path, kind, existed):
    root, model, train, val = tiny
    out = tmp_path / "runs" / "probe"
    if existed:  # a folder from an earlier run, plus a file of the user's
        out.mkdir(parents=True)
        (out / "metrics.json").write_text('{"earlier": true}\n')
        (out / "notes.txt").write_text("keep me")
    before = _snapshot(out)
    args, message = _failing_start(kind, tmp_path, model, train, val)
    r = run_cli("probe", *args, "-o", out, *_sets())
    assert r.code == 1 and message in r.err and "Traceback" not in r.err, r
    assert _snapshot(out) == before
    if not existed:
        assert not (tmp_path / "runs").exists()  # nor the parent the run would have created


@pytest.mark.parametrize("existed", [False, True])
def test_failure_while_writing_outputs_leaves_nothing_behind(tiny, tmp_path, monkeypatch, existed):
    """A run that fails on its last file (a full disk, say) does not leave a head without its metrics."""
    import errno

    from vjepa_cli.config.probe import load_probe_config
    from vjepa_cli.eval.probe.run import run_probe

    root, model, train, val = tiny
    cfg = load_probe_config("manifest", None, _sets()[1::2])
    out = tmp_path / "runs" / "probe"
    if existed:
        run_probe(cfg, model=model, train=train, val=val, output_dir=out)  # an earlier, complete run
    before = _snapshot(out)

    def full_disk(path, img):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("vjepa_cli.data.media.write_png", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_probe(cfg, model=model, train=train, val=val, output_dir=out)
    assert _snapshot(out) == before
    assert existed or not (tmp_path / "runs").exists()


def test_output_path_that_is_a_file_is_refused_before_any_work(run_cli, tiny, tmp_path):
    root, model, train, val = tiny
    (tmp_path / "out").write_text("a file")
    r = run_cli("probe", "--task", "manifest", "--train", train, "--val", val, "-m", model, "-o", tmp_path / "out", *_sets())
    assert r.code == 1 and "is a file" in r.err and "Traceback" not in r.err, r
    assert (tmp_path / "out").read_text() == "a file"


def test_no_output_folder_unless_asked_and_old_spelling(run_cli, tiny, tmp_path, monkeypatch):
    """Without -o nothing is written (the current folder stays as it was); --output-dir still works as before;
    --dtype runs the encoder in bf16."""
    root, model, train, val = tiny
    monkeypatch.chdir(tmp_path)
    args = ["probe", "--task", "manifest", "--train", train, "--val", val, "-m", model, "--json", *_sets()]
    r = run_cli(*args, "--dtype", "bf16")
    assert r.code == 0, r
    assert json.loads(r.out.strip().splitlines()[-1])["outputs"] == {} and list(tmp_path.iterdir()) == []
    old = run_cli(*args, "--output-dir", tmp_path / "old")
    assert old.code == 0 and (tmp_path / "old" / "probe.safetensors").is_file()
    both = run_cli(*args, "-o", tmp_path / "a", "--output-dir", tmp_path / "b")
    assert both.code == 1 and "same option" in both.err
