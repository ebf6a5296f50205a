"""`vjepa demo --quick`: the whole pipeline end to end on CPU (pretrain -> export -> extract -> probe -> surprise)."""

import json

from safetensors import safe_open

from vjepa_cli.data.media import read_image


def test_quick_demo_end_to_end(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    r = run_cli("demo", "--quick", "--out", out, "--json")
    assert r.code == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    metrics = {row["metric"]: row for row in res["rows"]}
    assert "motion probe val top-1 (%)" in metrics and "physics surprise AUROC (max)" in metrics
    assert "physics surprise AUROC (peak: max / mean)" in metrics
    assert "reach2d planning success (%, CEM toward goal images)" in metrics
    for row in res["rows"]:
        for side in ("pretrained", "random"):
            assert 0.0 <= row[side] <= 100.0
    assert res["pretrain"]["steps"] == 30
    report = (out / "report.md").read_text()
    assert "| motion probe val top-1 (%) |" in report and "quick" in report
    for rel in res["pictures"].values():  # every picture the report links exists and is a real PNG
        assert read_image(out / rel).ndim == 3
    assert {"loss curve", "PCA of patch features", "masks", "confusion matrix (pretrained)",
            "decoded predictions (possible vs impossible physics video)"} <= set(res["pictures"])
    assert any(name.startswith("planned episode") for name in res["pictures"]) and "planning" in res["timings"]
    assert res["pretrain"]["wm_eval_episodes"] == 2 and "Planning rows" in report
    assert res["pretrain"]["decoder_steps"] == 10 and (out / "decoder.safetensors").is_file()
    with safe_open(str(out / "features.safetensors"), "pt") as f:
        assert {"features", "timestamps"} <= set(f.keys())
    # the random baseline is a different model from the pretrained one
    with safe_open(str(out / "model.safetensors"), "pt") as a, safe_open(str(out / "random-init.safetensors"), "pt") as b:
        k = "encoder.blocks.0.attn.qkv.weight"
        assert not a.get_tensor(k).equal(b.get_tensor(k))


def test_demo_refuses_non_empty_output(run_cli, tmp_path):
    (tmp_path / "x").write_text("keep me")
    r = run_cli("demo", "--quick", "--out", tmp_path)
    assert r.code == 1 and "not empty" in r.err and "Traceback" not in r.err
    assert (tmp_path / "x").read_text() == "keep me"


def test_random_init_model_is_the_pretrain_init(tmp_path, monkeypatch, run_cli):
    """The baseline must be exactly the weights `vjepa pretrain` starts from with the same seed: one step at
    lr 1e-30 leaves the weights (and so the EMA target) at their init up to 1e-20, which must equal the baseline."""
    import torch

    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.demo import random_init_model
    from vjepa_cli.models.load import load_model

    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path / "cache"))
    sets = ["seed=3", "steps=1", "optim.lr=1.0e-30", "optim.start_lr=1.0e-30", "optim.final_lr=1.0e-30", "optim.warmup_steps=0",
            "data.synth.videos=8", "batch_size=2", "data.num_workers=0"]
    r = run_cli("pretrain", "tiny-cpu", "-o", tmp_path / "run", *[a for s in sets for a in ("--set", s)])
    assert r.code == 0, r
    cfg = load_recipe(PretrainConfig, "tiny-cpu", ["seed=3"])
    base = load_model(random_init_model(cfg.model, 3, tmp_path / "r.safetensors"))
    run = load_model(tmp_path / "run" / "model.safetensors")
    for mod in ("encoder", "predictor"):
        a, b = getattr(base, mod).state_dict(), getattr(run, mod).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-20) for k in a), mod
    other = load_model(random_init_model(cfg.model, 4, tmp_path / "r4.safetensors"))
    k = "blocks.0.attn.qkv.weight"
    assert not torch.equal(other.encoder.state_dict()[k], run.encoder.state_dict()[k])


def test_dtype_reaches_both_pretraining_recipes(run_cli, tmp_path):
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.demo.pipeline import DemoConfig, _physics_sets, _pretrain_sets

    for dtype, want in ((None, "auto"), ("bf16", "bf16"), ("fp32", "fp32")):
        cfg = DemoConfig(quick=True, dtype=dtype, device="cpu")
        for sets in (_pretrain_sets(cfg), _physics_sets(cfg)):
            rec = load_recipe(PretrainConfig, "tiny-cpu", sets)
            assert rec.dtype == want and rec.device == "cpu"
    r = run_cli("demo", "--quick", "-o", tmp_path / "d", "--dtype", "fp64")
    assert r.code == 2 and "fp64" in r.err and not (tmp_path / "d").exists()
