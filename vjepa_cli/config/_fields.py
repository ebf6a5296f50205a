"""The structure of config classes: which dataclass a field holds, and the old spellings a class still reads.

A config class may regroup its fields and keep reading the spelling of earlier releases (in recipes, in
`--set` overrides, in the metadata of files written before) by declaring

    ALIASES: ClassVar[dict[str, str]] = {"samples": "cem.samples", ...}  # old key -> current dotted path

The loader rewrites old keys to their current place before it checks keys and types (`upgrade` for a dict,
`canonical_key` for a `--set` key), so an old and a new spelling of the same setting meet in one place and a
later override wins whichever spelling it uses.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

from vjepa_cli.errors import VjepaError


def is_union(tp: Any) -> bool:
    return get_origin(tp) is Union or isinstance(tp, types.UnionType)


def dataclass_of(tp: Any) -> type | None:
    """The dataclass inside `tp` (plain or Optional), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if is_union(tp):
        subs = [a for a in get_args(tp) if dataclasses.is_dataclass(a)]
        return subs[0] if len(subs) == 1 else None
    return None


def section(cls: type | None, name: str) -> type | None:
    """The config class held by field `name` of `cls` (None for a plain value or an unknown name)."""
    if cls is None or name not in {f.name for f in dataclasses.fields(cls)}:
        return None
    return dataclass_of(get_type_hints(cls)[name])


def _aliases(cls: type | None) -> dict[str, str]:
    return getattr(cls, "ALIASES", {}) if cls is not None else {}


def canonical_key(cls: type, parts: list[str]) -> list[str]:
    """A dotted key (as parts) with the old spellings of every class along its path replaced."""
    out, todo = [], list(parts)
    while todo:
        part = todo.pop(0)
        if part in _aliases(cls):
            todo[:0] = _aliases(cls)[part].split(".")
            continue
        out.append(part)
        cls = section(cls, part)
    return out


def upgrade(cls: type, data: dict, where: str, prefix: str = "") -> dict:
    """A copy of `data` with every old spelling of `cls` and of its sections moved to its current key."""
    aliases = _aliases(cls)
    out = {k: v for k, v in data.items() if k not in aliases}
    for old in (k for k in data if k in aliases):
        *head, last = aliases[old].split(".")
        node = out
        for part in head:
            sub = node.get(part)
            if sub is not None and not isinstance(sub, dict):
                break  # a wrong type under the new key: the type check reports it
            node[part] = node = dict(sub or {})
        else:
            if last in node:
                raise VjepaError(f"{where}: '{prefix}{old}' is the old spelling of '{prefix}{aliases[old]}'; set one")
            node[last] = data[old]
    for f in dataclasses.fields(cls):
        sub = section(cls, f.name)
        if sub is not None and isinstance(out.get(f.name), dict):
            out[f.name] = upgrade(sub, out[f.name], where, f"{prefix}{f.name}.")
    return out
