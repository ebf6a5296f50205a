"""The demo's planning stage at tiny size: one reach2d world model per encoder file, each on that encoder."""

import pytest
import torch
from safetensors import safe_open

from vjepa_cli.data.media import read_image

pytestmark = pytest.mark.usefixtures("one_thread")


def test_planning_stage_trains_on_each_given_encoder(tmp_path):
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.train import PretrainConfig
    from vjepa_cli.demo import random_init_model
    from vjepa_cli.demo.planning import QUICK, planning_rows

    model = load_recipe(PretrainConfig, "tiny-cpu", []).model
    enc = {"pretrained": random_init_model(model, 1, tmp_path / "a.safetensors"),
           "random": random_init_model(model, 2, tmp_path / "b.safetensors")}
    ticks = []
    success, summary = planning_rows(True, tmp_path, enc, 0, "cpu", lambda *a: ticks.append(a))
    assert set(success) == {"pretrained", "random"} and all(0.0 <= v <= 1.0 for v in success.values())
    assert summary["wm_eval_episodes"] == QUICK["eval_episodes"] and 0.0 <= summary["wm_random_actions"] <= 1.0
    assert ticks[0] == ("planning", 0, 3) and ticks[-1] == ("planning", 3, 3)
    assert read_image(tmp_path / "planned.png").ndim == 3
    assert not (tmp_path / "wm-episodes" / "features").exists()
    k = "blocks.0.attn.qkv.weight"
    for name, path in enc.items():  # each world model carries exactly the encoder it was given
        with safe_open(str(path), "pt") as f, safe_open(str(tmp_path / f"wm-{name}" / "wm.safetensors"), "pt") as g:
            assert torch.equal(f.get_tensor(f"encoder.{k}"), g.get_tensor(f"encoder.{k}"))
