"""Fuzzed manifests, both formats: odd paths (commas, quotes, spaces, unicode, `::`), a BOM, CRLF line ends.

What the format can carry reads back exactly as written (ours: any path but one with NUL or a surrogate;
the official `path label` lines: any path on one line without leading or trailing blanks); anything else,
arbitrary text or bytes included, is refused with one VjepaError line, never another exception.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from _fuzz import assert_one_line, fuzz, tally
from hypothesis import example, given
from hypothesis import strategies as st

from vjepa_cli.data.manifest import ManifestRow, read_manifest, write_manifest
from vjepa_cli.errors import VjepaError

_odd = ",\"' ;:#\t\\~é漢\u2028\x85\ufeff"  # CSV and shell specials, unicode, and characters splitlines() breaks on
_segment = st.text(st.characters(codec="utf-8", exclude_characters="/\x00") | st.sampled_from(list(_odd)),
                   min_size=1, max_size=10).filter(lambda s: s not in (".", "..") and s == s.strip())
_path = st.lists(_segment, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s))  # readers strip the field


def _one_line(p: str) -> bool:
    return "\n" not in p and "\r" not in p


_fps = st.none() | st.floats(0.01, 1000).map(lambda f: float(f"{f:.6g}"))  # the writer keeps 6 digits
_count = st.none() | st.integers(0, 2**62)
rows_ours = st.lists(st.builds(
    ManifestRow,
    path=_path,
    label=st.integers(-1, 2**62), num_frames=_count, fps=_fps, width=_count, height=_count,
), min_size=1, max_size=4)


def _variants(data: bytes, crlf_ok: bool) -> list[tuple[str, bytes]]:
    out = [("plain", data), ("bom", b"\xef\xbb\xbf" + data)]
    if crlf_ok:
        out.append(("crlf", data.replace(b"\n", b"\r\n")))
    return out


@fuzz(80)
@given(rows=rows_ours, relative=st.booleans())
def test_ours_round_trips(rows, relative):
    """write_manifest -> read_manifest gives the rows back; so do the same bytes with a BOM and with CRLF."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d).resolve()
        if relative:  # under the manifest's folder: written relative to it, read back absolute
            rows = [dataclasses.replace(r, path=str(root / r.path.lstrip("/"))) for r in rows]
        m = write_manifest(root / "m.csv", rows)
        for variant, data in _variants(m.read_bytes(), crlf_ok=all(_one_line(r.path) for r in rows)):
            m.write_bytes(data)
            assert read_manifest(m) == rows, variant
            tally("manifest.ours-roundtrip", "accepted")


@fuzz(80)
@given(
    lines=st.lists(st.tuples(
        _path.filter(_one_line),
        st.sampled_from([" ", "\t", "  ", "::"]), st.integers(-1, 2**62)), min_size=1, max_size=4),
)
@example(lines=[("/a::b/c d.mp4", " ", 3)])  # `::` inside a path of a space-separated line
@example(lines=[("/a\u2028b.mp4", " ", 1), ("/c\x85.mp4", " ", 2)])  # characters splitlines() breaks on
def test_official_round_trips(lines):
    text = "".join(f"{p}{sep}{label}\n" for p, sep, label in lines)
    expected = [ManifestRow(p, label) for p, _, label in lines]
    with tempfile.TemporaryDirectory() as d:
        m = Path(d) / "m.txt"
        for variant, data in _variants(text.encode(), crlf_ok=True):
            m.write_bytes(data)
            assert read_manifest(m) == expected, variant
            tally("manifest.official-roundtrip", "accepted")


_csvish = st.text(st.sampled_from(list("path,label,num_frames,fps,width,height\n\r\"' :0123456789.-eE\x00\ufeffa/"))
                  | st.characters(codec="utf-8"), max_size=80)


@fuzz(200)
@given(data=st.one_of(
    _csvish.map(lambda t: t.encode("utf-8", "surrogatepass")),
    _csvish.map(lambda t: ("path,label,num_frames,fps,width,height\n" + t).encode("utf-8", "surrogatepass")),
    st.binary(max_size=80),
))
@example(data=b"path,label\n/a.mp4,1e400\n")  # a label beyond float range
@example(data=b"path,num_frames\n/a.mp4,inf\n")
@example(data=b"path,num_frames\n/a.mp4,9007199254740993\n")  # 2**53 + 1: not through a float
@example(data=b"path,label\n/a\x00b.mp4,1\n")  # NUL inside a path
@example(data=b"/a\x00b.mp4 1\n")
@example(data=b"path,label\n\"/a.mp4,1\n")  # a quote never closed
@example(data=b'"path",label\n/a.mp4,1\n')  # a quoted header
@example(data=b"path\n" + b"a" * 200_000 + b"\n")  # a field over csv's size limit
@example(data=b"/a.mp4 99999999999999999999999\n")
def test_anything_reads_or_refuses_in_one_line(data):
    with tempfile.TemporaryDirectory() as d:
        m = Path(d) / "m.csv"
        m.write_bytes(data)
        try:
            rows = read_manifest(m)
        except VjepaError as e:
            assert_one_line(e)
            assert len(str(e)) < 1000
            tally("manifest.arbitrary", "refused")
            return
        assert rows and all(isinstance(r, ManifestRow) and Path(r.path).is_absolute() for r in rows)
        assert all("\x00" not in r.path for r in rows)
        tally("manifest.arbitrary", "accepted")


def test_found_by_fuzzing(tmp_path):
    """Pinned: the cases above that crashed or read wrong before the fixes."""
    m = tmp_path / "m.csv"
    m.write_text('"path",label\n/a.mp4,1\n')
    assert read_manifest(m) == [ManifestRow("/a.mp4", 1)]  # a quoted header is still our header
    m.write_text("path,num_frames\n/a.mp4,9007199254740993\n")
    assert read_manifest(m)[0].num_frames == 2**53 + 1  # ints are not read through a float
    m.write_text("/a::b/c d.mp4 3\n")
    assert read_manifest(m) == [ManifestRow("/a::b/c d.mp4", 3)]
    m.write_text("path,label\n/a.mp4,2.5\n")
    with pytest.raises(VjepaError, match="line 2: '2.5' is not a whole number"):
        read_manifest(m)
    for content, match in [("path,label\n/a.mp4,1e400\n", "not a whole number"),
                           ("path,fps\n/a.mp4,nan\n", "not a finite number"),
                           ("path,label\n/a\x00b.mp4,1\n", "NUL"),
                           ("path\n" + "a" * 200_000 + "\n", "not a readable CSV")]:
        m.write_text(content)
        with pytest.raises(VjepaError, match=match) as e:
            read_manifest(m)
        assert_one_line(e.value)


def test_unwritable_path_is_refused_not_crashed(tmp_path):
    """A file name that is not valid UTF-8 (os.fsdecode gives a lone surrogate) cannot go into a UTF-8 CSV."""
    with pytest.raises(VjepaError, match="not valid UTF-8") as e:
        write_manifest(tmp_path / "m.csv", [ManifestRow("/videos/caf\udce9.mp4", 1)])
    assert_one_line(e.value)
    assert not (tmp_path / "m.csv").exists()
