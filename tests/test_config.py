from dataclasses import dataclass, field

import pytest

from vjepa_cli.config import dump_yaml, from_dict, load_recipe, read_yaml
from vjepa_cli.config.mask import MaskConfig
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3  # learning rate
    steps: int = 10
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    optim: Inner = field(default_factory=Inner)
    tag: str | None = None


def test_defaults_and_nested_override(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: run\noptim:\n  lr: 3\n  betas: [0.8, 0.9]\n")
    cfg = load_recipe(Outer, p, ["optim.steps=5", "tag=hello"])
    assert cfg.name == "run" and cfg.optim.lr == 3.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.steps == 5 and cfg.optim.betas == (0.8, 0.9) and cfg.tag == "hello"


def test_unknown_key_names_key_file_and_closest(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("optim:\n  lrr: 3\n")
    with pytest.raises(VjepaError) as e:
        load_recipe(Outer, p)
    msg = str(e.value)
    assert "optim.lrr" in msg and str(p) in msg and "optim.lr" in msg.split("did you mean")[1]


def test_wrong_type_and_validation(tmp_path):
    with pytest.raises(VjepaError, match="'optim.steps' must be int"):
        from_dict(Outer, {"optim": {"steps": "ten"}})
    with pytest.raises(VjepaError, match="must be int"):
        from_dict(Outer, {"optim": {"steps": True}})  # bools are not ints
    with pytest.raises(VjepaError, match="lr must be > 0"):
        from_dict(Outer, {"optim": {"lr": -1}})
    with pytest.raises(VjepaError, match="unknown key 'bogus'"):
        load_recipe(Outer, None, ["bogus=1"])
    with pytest.raises(VjepaError, match="key=value"):
        load_recipe(Outer, None, ["optim.lr"])


def test_yaml_errors_are_one_line(tmp_path):
    with pytest.raises(VjepaError, match="recipe not found"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(VjepaError, match="not valid YAML at line"):
        read_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(VjepaError, match="top level must be a mapping"):
        read_yaml(lst)


def test_round_trip_through_yaml(tmp_path):
    cfg = from_dict(Outer, {"name": "a", "optim": {"lr": 0.5}})
    p = tmp_path / "out.yaml"
    p.write_text(dump_yaml(cfg))
    assert load_recipe(Outer, p) == cfg
    m = ModelConfig(arch="vit_tiny", pos_embed="rope")
    p.write_text(dump_yaml(m.resolve()))
    back = load_recipe(ModelConfig, p)
    assert back == m.resolve() and back.embed_dim == 192 and back.pred_num_heads == 3 and back.sort_tokens
    mk = MaskConfig()
    p.write_text(dump_yaml(mk))
    assert load_recipe(MaskConfig, p) == mk


def test_model_config_validation():
    with pytest.raises(VjepaError, match="unknown arch 'vit_smal'"):
        from_dict(ModelConfig, {"arch": "vit_smal"})
    with pytest.raises(VjepaError, match="not divisible"):
        from_dict(ModelConfig, {"embed_dim": 100, "num_heads": 3})
    assert ModelConfig(arch="vit_giant_xformers", pred_num_heads=12).resolved_sizes()[:3] == (1408, 40, 22)
    with pytest.raises(VjepaError, match="pred_num_heads 22"):
        from_dict(ModelConfig, {"arch": "vit_giant_xformers"})
    assert ModelConfig().grid(16, (224, 320)) == (8, 14, 20)


def test_builtin_recipe_lookup(tmp_path, monkeypatch):
    from vjepa_cli.config import _recipes

    monkeypatch.setattr(_recipes, "BUILTIN_RECIPES", tmp_path)
    (tmp_path / "wm").mkdir()
    (tmp_path / "tiny-cpu.yaml").write_text("name: tiny\n")
    (tmp_path / "wm" / "reach2d.yaml").write_text("name: reach\n")
    assert _recipes.builtin_recipes() == ["tiny-cpu", "wm/reach2d"]
    monkeypatch.chdir(tmp_path / "wm")  # so relative names are not found as plain paths
    assert load_recipe(Outer, "tiny-cpu").name == "tiny"
    assert load_recipe(Outer, "recipes/tiny-cpu.yaml").name == "tiny"
    assert load_recipe(Outer, "wm/reach2d").name == "reach"
    with pytest.raises(VjepaError, match="did you mean 'tiny-cpu'"):
        load_recipe(Outer, "tiny-cpuu")
