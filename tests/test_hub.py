"""Hugging Face repo ids as model arguments, always offline: the repo is laid out in a temporary cache the way
`huggingface_hub` lays it out (its own `repo_folder_name`, refs and snapshots), and `huggingface_hub`'s own
reader must find it there before we rely on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

hh = pytest.importorskip("huggingface_hub")
from huggingface_hub import constants  # noqa: E402
from huggingface_hub.file_download import repo_folder_name  # noqa: E402

from vjepa_cli import load_model  # noqa: E402
from vjepa_cli.config.model import ModelConfig  # noqa: E402
from vjepa_cli.errors import VjepaError  # noqa: E402
from vjepa_cli.io.convert import write_hf_dir  # noqa: E402
from vjepa_cli.io.hub import parse_repo_id, resolve_model_path  # noqa: E402
from vjepa_cli.models.load import build_models  # noqa: E402

REPO = "facebook/vjepa2-tiny-test"
CFG = ModelConfig(arch="vit_tiny", depth=2, pos_embed="rope", img_size=32, num_frames=4, pred_embed_dim=48,
                  pred_depth=1, pred_num_heads=4, pred_num_mask_tokens=1)


def _commit(i: int) -> str:
    return f"{i:040x}"


def _lay_out(cache: Path, revisions: dict[str, int]) -> dict[int, torch.nn.Module]:
    """A transformers-layout repo in `cache`: one snapshot per commit (seeded weights), refs naming them."""
    root = cache / repo_folder_name(repo_id=REPO, repo_type="model")
    encoders = {}
    for ref, seed in revisions.items():
        enc, pred = build_models(CFG)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in enc.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
        write_hf_dir(root / "snapshots" / _commit(seed), enc.state_dict(), pred.state_dict(), CFG)
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(_commit(seed))
        encoders[seed] = enc.eval()
    return encoders


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # any network attempt would raise
    encoders = _lay_out(cache, {"main": 1, "v2": 2})
    # huggingface_hub itself must read the layout we wrote (else the test would only check our own reader)
    found = hh.try_to_load_from_cache(REPO, "config.json", cache_dir=str(cache), revision="v2")
    assert isinstance(found, str) and Path(found).parent.name == _commit(2)
    return cache, encoders


def _same(m, enc) -> bool:
    x = torch.randn(1, 3, CFG.num_frames, CFG.img_size, CFG.img_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(m.encoder(x), enc(x), atol=1e-5)


def test_repo_id_shapes(tmp_path, monkeypatch):
    assert parse_repo_id("facebook/vjepa2-vitl-fpc64-256") == ("facebook/vjepa2-vitl-fpc64-256", None)
    assert parse_repo_id("hf://facebook/vjepa2-vitl-fpc64-256@v1.0") == ("facebook/vjepa2-vitl-fpc64-256", "v1.0")
    for local in ("model.safetensors", "runs/model.safetensors", "/abs/path", "a/b/c", "vitl16.pth.tar"):
        assert parse_repo_id(local) is None, local
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").write_bytes(b"x")  # an existing local path always wins
    assert parse_repo_id("owner/name") is None
    assert resolve_model_path("owner/name") == Path("owner/name")


def test_load_model_from_repo_id_and_revision(offline_cache):
    _, encoders = offline_cache
    assert _same(load_model(REPO), encoders[1])
    assert _same(load_model(REPO, revision="v2"), encoders[2])
    assert _same(load_model(f"{REPO}@v2"), encoders[2])
    assert _same(load_model(REPO, revision=_commit(2)), encoders[2])
    assert not _same(load_model(REPO), encoders[2])


def test_missing_repo_offline_is_one_clear_error(offline_cache):
    with pytest.raises(VjepaError) as e:
        load_model("facebook/not-downloaded")
    assert "not in the Hugging Face cache" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(VjepaError, match="revision"):
        load_model(REPO, revision="no-such-branch")
    with pytest.raises(VjepaError, match="--revision needs a Hugging Face repo id"):
        resolve_model_path("model.safetensors", revision="main")


def test_cli_convert_repo_id_with_hub_env(offline_cache, tmp_path):
    """The real command with HF_HUB_OFFLINE / HF_HUB_CACHE read from the environment, as a user sets them."""
    cache, encoders = offline_cache
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = tmp_path / "tiny.safetensors"
    cmd = [sys.executable, "-m", "vjepa_cli", "convert", f"hf://{REPO}", "--revision", "v2", "-o", str(out), "--json"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["source_format"] == "hf"
    assert _same(load_model(out), encoders[2])
    assert load_model(out).metadata["provenance"]["source"] == f"hf://{REPO}@{_commit(2)}"
    bad = subprocess.run(cmd[:4] + ["facebook/absent", "-o", str(tmp_path / "x.safetensors")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "HF_HUB_OFFLINE" in bad.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_commands_take_a_repo_id_as_model(offline_cache, run_cli, tmp_path):
    """`--model owner/name` on a frozen-model command (extract) resolves to the cached snapshot."""
    import numpy as np

    from vjepa_cli.data.media import write_video

    video = write_video(tmp_path / "v.mp4", np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), np.uint8), 8)
    r = run_cli("extract", video, "-m", REPO, "-o", tmp_path / "f.safetensors", "--frames", "4", "--size", "32")
    assert r.code == 0, r
    assert (tmp_path / "f.safetensors").is_file()
