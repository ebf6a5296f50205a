"""Manifests in every accepted format."""

from __future__ import annotations

from pathlib import Path

import pytest

from vjepa_cli.data.manifest import (
    ManifestRow,
    class_names,
    read_labels,
    read_manifest,
    write_labels,
    write_manifest,
)
from vjepa_cli.errors import VjepaError


def test_ours_roundtrip_with_relative_paths(tmp_path):
    rows = [
        ManifestRow(str(tmp_path / "v" / "a.mp4"), 3, 48, 29.97, 320, 240),
        ManifestRow("/elsewhere/b c.mp4", -1, None, None, None, None),
    ]
    m = write_manifest(tmp_path / "m.csv", rows)
    text = m.read_text().splitlines()
    assert text[0] == "path,label,num_frames,fps,width,height"
    assert text[1] == "v/a.mp4,3,48,29.97,320,240"  # relative to the manifest's folder
    assert text[2] == "/elsewhere/b c.mp4,,,,,"
    assert read_manifest(m) == rows


def test_ours_partial_columns_and_moved_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "m.csv").write_text("path,label\nclips/x.mp4,2\n../y.mp4,\n")
    rows = read_manifest(tmp_path / "d" / "m.csv")
    assert rows[0] == ManifestRow(str(tmp_path / "d" / "clips" / "x.mp4"), 2)
    assert rows[1].path == str(tmp_path / "y.mp4") and rows[1].label == -1 and rows[1].num_frames is None


@pytest.mark.parametrize("sep", [" ", "::"])
def test_official_headerless(tmp_path, sep):
    (tmp_path / "o.csv").write_text(f"/abs/a.mp4{sep}0\nrel/b.mp4{sep}7\n\nwith space/c.mp4{sep}12\n")
    rows = read_manifest(tmp_path / "o.csv")
    assert [r.label for r in rows] == [0, 7, 12]
    assert rows[0].path == "/abs/a.mp4"
    assert rows[1].path == str(tmp_path / "rel" / "b.mp4")
    assert rows[2].path == str(tmp_path / "with space" / "c.mp4")


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ("/a.mp4 notanumber\n", "line 1"),
    ("path,label,colour\na.mp4,1,red\n", "unknown manifest column"),
    ("path,label\na.mp4,x\n", "not a number"),
    ("path,label\n", "lists no videos"),
])
def test_bad_manifests_raise_one_clear_error(tmp_path, content, match):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(VjepaError, match=match):
        read_manifest(tmp_path / "bad.csv")


def test_missing_manifest(tmp_path):
    with pytest.raises(VjepaError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_labels_json_roundtrip_and_ssv2_strings(tmp_path):
    write_labels(tmp_path / "labels.json", {"b": 1, "a": 0})
    assert read_labels(tmp_path / "labels.json") == {"a": 0, "b": 1}
    (tmp_path / "ssv2.json").write_text('{"Holding something": "0", "Pushing something": "1"}')
    assert read_labels(tmp_path / "ssv2.json") == {"Holding something": 0, "Pushing something": 1}
    assert class_names({"x": 1, "y": 0}) == ["y", "x"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(VjepaError):
        read_labels(tmp_path / "bad.json")


def test_cwd_relative_rows_survive_a_round_trip(tmp_path, monkeypatch):
    """Rows given relative to the current folder (e.g. `vjepa synth data` or `vjepa demo --out run`) are read
    back as the same files, not re-resolved against the manifest's own folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "videos").mkdir(parents=True)
    write_manifest("run/train.csv", [ManifestRow("run/videos/a.mp4", 1)])
    assert (tmp_path / "run" / "train.csv").read_text().splitlines()[1].startswith("videos/a.mp4,1")
    (row,) = read_manifest("run/train.csv")
    assert Path(row.path) == tmp_path / "run" / "videos" / "a.mp4"
