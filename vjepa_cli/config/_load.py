"""Typed, strict configuration: YAML recipes and `--set a.b=c` overrides onto frozen dataclasses.

Every config section is a frozen dataclass whose fields carry a comment each and whose `__post_init__`
raises `ValueError` for impossible values. `load_recipe` reads a YAML file, applies the overrides, and
builds the dataclass, refusing unknown keys (naming the closest valid key) and wrong types (naming the
expected type). Old spellings a class declares in `ALIASES` are read too (see `_fields`). `to_dict` /
`dump_yaml` write the resolved config back.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from vjepa_cli.config._fields import canonical_key, dataclass_of, is_union, upgrade
from vjepa_cli.config._recipes import builtin_recipes, read_yaml, resolve_recipe
from vjepa_cli.errors import VjepaError, one_line
from vjepa_cli.runtime import stable_hash

T = TypeVar("T")


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key path that `cls` accepts (nested dataclasses expanded)."""
    keys = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        keys.append(path)
        sub = dataclass_of(hints[f.name])
        if sub is not None:
            keys.extend(_all_keys(sub, path + "."))
    return keys


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if is_union(tp):
        return " or ".join(_type_name(a) for a in get_args(tp))
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


_YAML11_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class _Bad(Exception):
    """Internal: a value does not fit a type."""


_INT64 = (-(2**63), 2**63 - 1)  # every int of a config ends up in torch or numpy


def _show(value: Any) -> str:
    """A value as an error message quotes it: its repr, on one line and short."""
    if isinstance(value, int) and value.bit_length() > 200:  # its repr is long (and fails past 4300 digits)
        return f"an integer of about {int((value.bit_length() - 1) * math.log10(2)) + 1} digits"
    return one_line(repr(value), 120)


def _coerce_scalar(value: Any, tp: Any) -> Any:
    """`value` as the scalar type `tp` (None, bool, int, float, str or a class); `_Bad` if it does not fit."""
    if tp is type(None):
        if value is None:
            return None
        raise _Bad
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]:
            return value
        raise _Bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 2**1000 else math.inf  # float(10**400) raises OverflowError
        elif isinstance(value, str) and _YAML11_FLOAT.match(value.strip()):  # YAML 1.1 reads `1e-3` as a string
            number = float(value)
        else:
            raise _Bad
        if not math.isfinite(number):  # nan/inf would only show up later as a nan loss
            raise _Bad
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Bad
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Bad


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting lists to tuples and ints to floats."""
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Bad
        return _build(tp, value, where, key + ".")
    if is_union(tp):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key, where)
            except _Bad:
                continue
        raise _Bad
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise _Bad
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Bad
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _Bad
            return tuple(_coerce(v, a, key, where) for v, a in zip(value, args, strict=False))
        item = args[0] if args else Any
        out = [_coerce(v, item, key, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise _Bad
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key, where): _coerce(v, vt, key, where) for k, v in value.items()}
    return _coerce_scalar(value, tp)


def _build(cls: type[T], data: dict, where: str, prefix: str = "") -> T:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in names:
            full = one_line(f"{prefix}{key}")
            valid = [f"{prefix}{n}" for n in sorted(names)]
            close = difflib.get_close_matches(full, valid, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else "valid keys here: " + ", ".join(valid)
            raise VjepaError(f"{where}: unknown key '{full}'", hint)
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        key = f"{prefix}{name}"
        try:
            kwargs[name] = _coerce(data[name], hints[name], key, where)
        except _Bad:
            got = data[name]
            if isinstance(got, float) and not math.isfinite(got):
                raise VjepaError(f"{where}: '{key}' must be a finite number, got {got}") from None
            if isinstance(got, int) and not isinstance(got, bool) and not _INT64[0] <= got <= _INT64[1]:
                raise VjepaError(f"{where}: '{key}' must be {_type_name(hints[name])}, got {_show(got)}, "
                                 "more than 64 bits hold") from None
            raise VjepaError(f"{where}: '{key}' must be {_type_name(hints[name])}, got {_show(got)}") from None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ArithmeticError) as e:
        label = prefix.rstrip(".") or cls.__name__
        raise VjepaError(f"{where}: invalid '{label}': {one_line(e, 300)}") from None


def from_dict(cls: type[T], data: dict | None, where: str = "config") -> T:
    """Build the dataclass `cls` from a plain dict, strictly (unknown keys and wrong types are errors)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise VjepaError(f"{where}: the top level must be a mapping of keys to values")
    try:
        return _build(cls, upgrade(cls, data, where), where)
    except RecursionError:  # YAML anchors can make a list that contains itself
        raise VjepaError(f"{where}: a value refers to itself or is nested too deeply") from None


def parse_set(item: str) -> tuple[list[str], Any]:
    """`"optim.lr=1e-3"` -> (["optim", "lr"], 0.001); the value is parsed as YAML."""
    if "=" not in item:
        raise VjepaError(f"--set '{one_line(item)}' is not of the form key=value", "example: --set optim.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise VjepaError(f"--set '{one_line(item)}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: an int of over 4300 digits
        value = raw
    return key.split("."), value


def apply_sets(data: dict, sets: typing.Iterable[str], cls: type | None = None) -> dict:
    """Return a copy of `data` with every `a.b=c` override applied (creating mappings as needed).

    With the config class `cls`, old spellings (its `ALIASES`) in `data` and in the keys are first moved to
    their current place, so an override wins over the recipe whichever spelling each uses."""
    out = copy.deepcopy(data) if data else {}  # YAML gives dates, bytes and self-references JSON cannot copy
    if cls is not None:
        out = upgrade(cls, out, "--set")
    for item in sets:
        parts, value = parse_set(item)
        if cls is not None:
            parts = canonical_key(cls, parts)
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise VjepaError(f"--set '{one_line(item)}': '{one_line(part)}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def load_recipe(cls: type[T], path: str | Path | None, sets: typing.Iterable[str] = ()) -> T:
    """Load `cls` from a YAML recipe (or defaults when `path` is None) plus `--set` overrides."""
    sets = list(sets)
    where = one_line(path) if path is not None else "defaults"
    data = upgrade(cls, read_yaml(path), where) if path is not None else {}
    if sets:
        data = apply_sets(data, sets, cls)
        where += " (with --set " + one_line(" ".join(sets), 300) + ")"
    return from_dict(cls, data, where)


def to_dict(cfg: Any) -> dict:
    """The config as plain YAML/JSON-able data (tuples become lists). A field whose metadata has
    `omit_default` is left out while it holds its default (an option added later: older records stay the same)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                    if not (f.metadata.get("omit_default") and getattr(v, f.name) == f.default)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_hash(cfg: Any) -> str:
    """A short stable hash of the resolved config (for provenance)."""
    return stable_hash(to_dict(cfg), 12)


def all_keys(cls: type) -> list[str]:
    """All dotted keys a config class accepts (for docs and `--help`)."""
    return _all_keys(cls)


__all__ = ["all_keys", "apply_sets", "builtin_recipes", "config_hash", "dump_yaml", "from_dict",
           "load_recipe", "one_line", "read_yaml", "resolve_recipe", "to_dict"]
