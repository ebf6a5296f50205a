"""Released probes -> our probe files: transformers `VJEPA2ForVideoClassification` (logit parity to 1e-5 on a
randomly perturbed model, through the real `vjepa convert`) and official V-JEPA 1 / 2 probe checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from vjepa_cli import load_model, load_probe  # noqa: E402
from vjepa_cli.models.pooler import AttentiveClassifier  # noqa: E402

TOL = 1e-5
NAMES = ["pour", "push", "spin"]


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module.eval()


@pytest.fixture(scope="module")
def hf_classifier(tmp_path_factory):
    cfg = transformers.VJEPA2Config(
        hidden_size=96, num_hidden_layers=2, num_attention_heads=3, crop_size=32, frames_per_clip=4,
        pred_hidden_size=48, pred_num_hidden_layers=1, pred_num_attention_heads=4, attn_implementation="eager",
        num_labels=3, id2label=dict(enumerate(NAMES)), label2id={n: i for i, n in enumerate(NAMES)})
    torch.manual_seed(0)  # transformers initialises from the global RNG; only this fixture relies on it
    model = _perturb(transformers.VJEPA2ForVideoClassification(cfg), 1)
    folder = tmp_path_factory.mktemp("hfcls") / "vjepa2-tiny-cls"
    model.save_pretrained(folder)
    return model, folder


def test_hf_classifier_parity(hf_classifier, run_cli, tmp_path):
    model, folder = hf_classifier
    r = run_cli("convert", folder, "-o", tmp_path / "m.safetensors", "--probe-output", tmp_path / "p.safetensors",
                "--json")
    assert r.code == 0, r
    records = [json.loads(line) for line in r.out.strip().splitlines()]
    assert records[-1]["probe"]["source_format"] == "hf-classifier" and records[-1]["probe"]["num_heads"] == 3
    enc, probe = load_model(tmp_path / "m.safetensors").encoder, load_probe(tmp_path / "p.safetensors")
    assert probe.classes == NAMES and probe.config.probe.kind == "attentive-v2" and probe.config.probe.depth == 4
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(pixel_values_videos=x.permute(0, 2, 1, 3, 4)).logits  # HF: (B, T, C, H, W)
        ours = probe.head(enc(x))
    assert (ours - ref).abs().max() <= TOL
    assert ref.std() > 0.1  # the comparison is not between two near-constant outputs


def test_model_file_without_probe_output_is_left_out_on_probe_failure(hf_classifier, run_cli, tmp_path):
    _, folder = hf_classifier
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")  # 2 names for 3 outputs
    r = run_cli("convert", folder, "-o", tmp_path / "m.safetensors", "--probe-output", tmp_path / "p.safetensors",
                "--classes", names)
    assert r.code == 1 and "names 2 classes but the probe has 3 outputs" in r.err
    assert not (tmp_path / "m.safetensors").exists() and not (tmp_path / "p.safetensors").exists()


@pytest.mark.parametrize("v2", [True, False])
def test_official_probe_checkpoints(v2, run_cli, tmp_path):
    heads = 16 if v2 else 4  # v2: the ssv2 recipe's 16 heads by default; v1: given with --num-heads
    head = _perturb(AttentiveClassifier(64, heads, 5, depth=4 if v2 else 1, v2_style=v2,
                                        generator=torch.Generator().manual_seed(3)), 4)
    sd = {f"module.{k}": v.clone() for k, v in head.state_dict().items()}
    other = {k: v + 1 for k, v in sd.items()}
    ckpt = ({"classifiers": [other, sd], "opt": [{}], "epoch": 20} if v2 else {"classifier": sd, "epoch": 20})
    torch.save(ckpt, tmp_path / "probe.pt")
    (tmp_path / "names.txt").write_text("\n".join("abcde") + "\n")
    args = ["convert", tmp_path / "probe.pt", "-o", tmp_path / "p.safetensors", "--task", "ssv2", "--classes",
            tmp_path / "names.txt", "--json"] + (["--head", "1"] if v2 else ["--num-heads", "4"])
    r = run_cli(*args)
    assert r.code == 0, r
    assert json.loads(r.out)["probe"]["kind"] == ("attentive-v2" if v2 else "attentive")
    probe = load_probe(tmp_path / "p.safetensors")
    assert probe.classes == list("abcde")
    assert (probe.config.data.frames, probe.config.data.segments, probe.config.data.views) == (16, 2, 3)  # ssv2
    x = torch.randn(3, 10, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(probe.head(x), head(x))
    if v2:
        bad = run_cli("convert", tmp_path / "probe.pt", "-o", tmp_path / "q.safetensors", "--head", "2")
        assert bad.code == 1 and "out of range" in bad.err and not (tmp_path / "q.safetensors").exists()
