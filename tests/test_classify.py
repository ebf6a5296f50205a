"""`vjepa classify` and `load_probe`: a probe applied to new videos gives what `vjepa probe` measured on them."""

from __future__ import annotations

import json

import pytest
import torch

from tests._probe_helpers import TINY_SETS, colour_manifests, colour_video, tiny_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A probe trained on colour videos, with 2 views per validation video (so the views' average matters)."""
    from typer.testing import CliRunner

    from vjepa_cli.cli import app

    root = tmp_path_factory.mktemp("classify")
    train, val = colour_manifests(root, classes=3, n_train=15, n_val=9)
    model = tiny_model(root / "m.safetensors")
    sets = [s for s in TINY_SETS if not s.startswith("data.views")] + ["data.views=2"]
    args = ["probe", "--task", "manifest", "--train", str(train), "--val", str(val), "-m", str(model),
            "-o", str(root / "probe"), "--json", *[a for s in sets for a in ("--set", s)]]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return root, model, root / "probe" / "probe.safetensors", val


def _val_paths(val):
    from vjepa_cli.data.manifest import read_manifest

    return [(row.path, int(row.label)) for row in read_manifest(val)]


def test_classify_matches_the_probe_validation(run_cli, trained):
    """Same clips, views and head as the probe's own validation: the same probabilities, the same accuracy."""
    import vjepa_cli
    from vjepa_cli.eval.probe.features import encode_split

    root, model, probe_path, val = trained
    samples = _val_paths(val)
    r = run_cli("classify", *[p for p, _ in samples], "--probe", probe_path, "--json", "--top-k", "3")
    assert r.code == 0, r
    rows = [json.loads(line) for line in r.out.strip().splitlines()]
    assert [row["path"] for row in rows] == [p for p, _ in samples]
    # reference: the probe's validation path (encode_split + the mean of the views' softmax)
    probe = vjepa_cli.load_probe(probe_path)
    enc = vjepa_cli.load_model(model).encoder
    feats, labels, errors = encode_split(enc, samples, probe.config, False, 0, torch.device("cpu"))
    assert not errors and feats.shape[1] == 2  # two views
    with torch.no_grad():
        ref = probe.head(feats.float().flatten(0, 1)).softmax(-1).reshape(len(samples), 2, -1).mean(1)
    for row, p in zip(rows, ref, strict=True):
        assert [t["label"] for t in row["top"]] == [probe.classes[i] for i in p.topk(3).indices.tolist()]
        assert row["prob"] == pytest.approx(float(p.max()), abs=1e-4)  # the cache stores fp16 features
    metrics = json.loads((root / "probe" / "metrics.json").read_text())
    correct = sum(row["label"] == probe.classes[y] for row, (_, y) in zip(rows, samples, strict=True))
    assert correct / len(samples) == pytest.approx(metrics["best"]["val_top1"])


def test_stdin_text_output_and_failures(run_cli, trained, tmp_path, monkeypatch):
    import io

    root, model, probe_path, val = trained
    good = colour_video(tmp_path / "red.mp4", 0, 99)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{good}\n{bad}\n{tmp_path / 'missing.mp4'}\n"))
    r = run_cli("classify", "-", "--probe", probe_path, "-m", model, "-k", "1")
    assert r.code == 1 and "Traceback" not in r.err
    assert r.out.count("\n") == 1 and str(good) in r.out  # the good one is still classified, on stdout
    assert "broken.mp4" in r.err and "missing.mp4" in r.err and "2 of 3 input(s) failed" in r.err


@pytest.mark.parametrize("what", ["model-as-probe", "missing-probe", "wrong-width"])
def test_user_errors_are_one_line(run_cli, trained, tmp_path, what):
    from vjepa_cli.config.model import ModelConfig
    from vjepa_cli.models.load import build_models, save_model_file

    root, model, probe_path, val = trained
    video = _val_paths(val)[0][0]
    args = {"model-as-probe": ["--probe", model, "-m", model],
            "missing-probe": ["--probe", tmp_path / "nope.safetensors", "-m", model]}.get(what)
    if what == "wrong-width":
        cfg = ModelConfig(arch="vit_tiny", embed_dim=48, depth=1, num_heads=2, num_frames=4, img_size=32,
                          pred_embed_dim=16, pred_depth=1, pred_num_heads=2)
        other = save_model_file(tmp_path / "w48.safetensors", *build_models(cfg, True), cfg, {"test": True})
        args = ["--probe", probe_path, "-m", other]
    r = run_cli("classify", video, *args)
    assert r.code != 0 and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert {"model-as-probe": "not a probe file", "missing-probe": "probe file not found",
            "wrong-width": "reads 32-wide features but this model gives 48"}[what] in r.err
