"""Fuzzed recipes and `--set` overrides: whatever a user writes ends in a valid config or in one VjepaError line.

Three ways in, each for the three recipe families (pretrain, probe, wm): `from_dict` on nested data whose keys
are mostly real (so the values reach every field's type check and `__post_init__`), `--set key=value` strings,
and whole recipe files (YAML text, arbitrary text, arbitrary bytes). Every accepted config must survive
`dump_yaml` -> `load_recipe` unchanged, as `vjepa pretrain` writes it next to its checkpoints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from _fuzz import assert_one_line, fuzz, tally
from hypothesis import example, given
from hypothesis import strategies as st

from vjepa_cli.config import all_keys, dump_yaml, from_dict, load_recipe, to_dict
from vjepa_cli.config.probe import ProbeConfig
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.config.wm import WMConfig
from vjepa_cli.errors import VjepaError

FAMILIES = {"pretrain": (PretrainConfig, "tiny-cpu"), "probe": (ProbeConfig, "probe/synth-motion"),
            "wm": (WMConfig, "wm/reach2d")}

_text = st.text(st.characters(codec="utf-8"), max_size=12)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # more than a float holds
    st.floats(), st.floats(0, 1), _text, st.sampled_from(["auto", "cpu", "rope", "none", "mean", "1e-3", "~", ""]),
    st.dates(), st.binary(max_size=4),  # YAML makes both: 2024-01-01, !!binary
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=3),
                      max_leaves=8)


def _leaf_types(cls: type, prefix: str = "") -> dict[str, object]:
    """Dotted key -> annotation of every field that is not itself a section."""
    out = {}
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(_leaf_types(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def _value_for(tp: object) -> st.SearchStrategy:
    """Mostly values of the field's own type (so `__post_init__` is reached), sometimes anything."""
    if _has_dataclass(tp):  # hypothesis would build instances (and trip their validation), not mappings
        return values
    typed = st.from_type(tp).map(lambda v: list(v) if isinstance(v, tuple) else v)
    return st.one_of(typed, typed, values)


def _has_dataclass(tp: object) -> bool:
    return dataclasses.is_dataclass(tp) or any(_has_dataclass(a) for a in typing.get_args(tp))


def _nest(pairs: list[tuple[str, object]]) -> dict:
    """{'a.b': v} pairs -> {'a': {'b': v}}, a later pair through a non-mapping replacing it by a mapping."""
    out: dict = {}
    for path, value in pairs:
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = value
    return out


def _roundtrip(cls: type, cfg: object) -> None:
    """An accepted config written as YAML reads back as the same config."""
    text = dump_yaml(cfg)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "resolved.yaml"
        p.write_text(text)
        again = load_recipe(cls, p)
    assert dump_yaml(again) == text


def _check(target: str, cls: type, build) -> None:
    try:
        cfg = build()
    except VjepaError as e:
        assert_one_line(e)
        tally(target, "refused")
        return
    assert isinstance(cfg, cls)
    _roundtrip(cls, cfg)
    tally(target, "accepted")


def _flow(v: object) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=1 << 20).strip()


def _pairs(cls: type) -> st.SearchStrategy:
    """(dotted key, value): a real field with a value mostly of its type, or any key with any value."""
    leaves = _leaf_types(cls)
    typed = st.one_of([st.tuples(st.just(k), _value_for(tp)) for k, tp in sorted(leaves.items())])
    return st.one_of(typed, typed, st.tuples(st.sampled_from(all_keys(cls)) | _text, values))


def _sets(cls: type) -> st.SearchStrategy:
    """One `--set` string: mostly key=YAML of a real field, sometimes a malformed one."""
    garbage = st.builds(lambda k, eq, v: f"{k}{eq}{v}",
                        st.sampled_from(all_keys(cls)) | st.text(st.sampled_from("ab.=_ \n"), max_size=6),
                        st.sampled_from(["=", "", "=="]), _text | values.map(_flow))
    return st.one_of(_pairs(cls).map(lambda kv: f"{kv[0]}={_flow(kv[1])}"), garbage)


PAIRS = {family: _pairs(cls) for family, (cls, _) in FAMILIES.items()}
SETS = {family: _sets(cls) for family, (cls, _) in FAMILIES.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@fuzz(80)
@given(data=st.data())
def test_from_dict_on_real_keys(family, data):
    cls, _ = FAMILIES[family]
    pairs = data.draw(st.lists(PAIRS[family], max_size=4))
    _check(f"config.from_dict[{family}]", cls, lambda: from_dict(cls, _nest(pairs)))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@fuzz(60)
@given(data=st.data())
def test_set_overrides(family, data):
    cls, recipe = FAMILIES[family]
    sets = data.draw(st.lists(SETS[family], min_size=1, max_size=3))
    _check(f"config.--set[{family}]", cls, lambda: load_recipe(cls, recipe, sets))


@example(text=b"d: 2024-01-01\n")
@example(text=b"steps: !!binary aGVsbG8=\n")
@example(text=b"data: &a {datasets: [*a]}\n")  # a mapping that contains itself
@example(text=b"\xef\xbb\xbfsteps: 3\r\nseed: 1\r\n")  # BOM, CRLF
@example(text=b"\x00")
@example(text=b"\xff\xfe")
@fuzz(50)
@given(text=st.one_of(
    values.map(lambda v: yaml.safe_dump(v).encode()),
    st.dictionaries(st.sampled_from(["steps", "seed", "model", "optim", "data", "mask"]), values, max_size=3)
    .map(lambda d: yaml.safe_dump(d).encode()),
    st.text(st.characters(codec="utf-8"), max_size=40).map(str.encode),
    st.binary(max_size=40),
))
def test_recipe_files(text):
    for family, (cls, _) in sorted(FAMILIES.items()):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "recipe.yaml"
            p.write_bytes(text)
            _check(f"config.recipe-file[{family}]", cls, lambda p=p, cls=cls: load_recipe(cls, p))
            _check(f"config.recipe-file+set[{family}]", cls, lambda p=p, cls=cls: load_recipe(cls, p, ["seed=1"]))


@pytest.mark.parametrize("sets, expected", [
    (["optim.lr=.nan"], "'optim.lr' must be a finite number, got nan"),
    (["optim.lr=.inf"], "'optim.lr' must be a finite number, got inf"),
    (["optim.lr=" + "9" * 400], "'optim.lr' must be float, got an integer of about 400 digits"),
    (["seed=" + "9" * 5000], "'seed' must be int, got '99999"),  # past int()'s 4300 digits YAML keeps the text
    (["model.num_heads=0"], "num_heads"),
    (["steps=1\n2"], "'steps' must be int"),
])
def test_found_by_fuzzing(sets, expected):
    """Cases the fuzzing found, pinned: non-finite or oversized numbers, a zero divisor, a newline in a --set."""
    with pytest.raises(VjepaError, match=expected) as e:
        load_recipe(PretrainConfig, "tiny-cpu", sets)
    text = assert_one_line(e.value)
    assert len(text) < 1500  # a 400-digit value is shown shortened


def test_recipe_nested_deeper_than_python_recurses(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 3000)
    with pytest.raises(VjepaError, match="not a usable recipe: maximum recursion depth") as e:
        load_recipe(PretrainConfig, p)
    assert_one_line(e.value)


def test_yaml_dates_and_binary_values_refuse_by_type():
    """YAML turns `2024-01-01` into a date and `!!binary` into bytes; both are wrong types, not crashes."""
    with pytest.raises(VjepaError, match="'seed' must be int, got datetime.date"):
        from_dict(PretrainConfig, {"seed": dt.date(2024, 1, 1)})
    cfg = load_recipe(PretrainConfig, None, ["seed=3"])
    assert cfg.seed == 3 and to_dict(cfg)["seed"] == 3 and not math.isnan(cfg.optim.lr)
