"""Recipe files: the built-in recipes shipped with the package, finding a recipe by path or name, and reading
a YAML mapping with every failure as one clear line."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from vjepa_cli.errors import VjepaError, one_line

BUILTIN_RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped with the package (`tiny-cpu`, `probe/synth-motion`, ...)."""
    if not BUILTIN_RECIPES.is_dir():
        return []
    return sorted(str(p.relative_to(BUILTIN_RECIPES).with_suffix("")) for p in BUILTIN_RECIPES.rglob("*.yaml"))


def resolve_recipe(path: str | Path) -> Path:
    """A recipe path as given, or else a built-in recipe by name (`tiny-cpu`, `recipes/vitb.yaml`, `wm/reach2d`)."""
    p = Path(path)
    if p.exists():
        return p
    name = str(path).removesuffix(".yaml").removesuffix(".yml")
    name = name.removeprefix("recipes/")
    candidate = BUILTIN_RECIPES / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = builtin_recipes()
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else "built-in recipes: " + ", ".join(known)
    raise VjepaError(f"recipe not found: {p}", hint)


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping (a path, or a built-in recipe name), turning every failure into one clear VjepaError."""
    p = resolve_recipe(path)
    if p.is_dir():
        raise VjepaError(f"recipe {p} is a directory, not a YAML file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).strip().splitlines()[0]  # a ReaderError has no .problem
        raise VjepaError(f"{p}: not valid YAML{at}: {one_line(problem)}") from None
    except (ValueError, RecursionError) as e:  # an int of over 4300 digits; brackets nested thousands deep
        raise VjepaError(f"{p}: not a usable recipe: {one_line(e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VjepaError(f"cannot read recipe {p}: {one_line(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VjepaError(f"{p}: the top level must be a mapping of keys to values")
    return data
