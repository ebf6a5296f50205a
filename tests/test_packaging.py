"""What users install: licence, markers and package data as the packaging rules in CONTRIBUTING.md say."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_with_its_file():
    p = _project()["project"]
    assert p["license"] == "MIT" and p["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_dependencies_have_no_upper_pins_and_decord_has_a_platform_marker():
    deps = _project()["project"]["dependencies"]
    assert not [d for d in deps if "<" in d.split(";")[0]], deps
    decord = next(d for d in deps if d.startswith("decord"))
    assert "platform_machine" in decord  # no wheels for Apple silicon / ARM Linux: PyAV reads videos there
    assert re.match(r"torch>=2\.3$", next(d for d in deps if d.startswith("torch")))


def test_package_ships_its_types_marker_and_recipes():
    data = _project()["tool"]["setuptools"]["package-data"]["vjepa_cli"]
    assert "py.typed" in data and (ROOT / "vjepa_cli" / "py.typed").is_file()
    recipes = ROOT / "vjepa_cli" / "recipes"
    assert recipes.is_dir() and not recipes.is_symlink() and (recipes / "tiny-cpu.yaml").is_file()
    # the checkout's top-level recipes/ (what `vjepa pretrain recipes/vitb.yaml` names) is the same folder
    assert (ROOT / "recipes").resolve() == recipes.resolve()
