"""Fuzzed model files: truncated, bytes flipped, a header that claims more than the file holds, metadata fields
missing or garbled, tensors of the wrong dtype or shape, an architecture that does not fit the weights.

`load_model` either loads a working model or raises one VjepaError (its first line says what is wrong; a shape
mismatch adds its key/shape table below, indented), and `vjepa extract --model bad.safetensors` exits non-zero
with that message and no traceback, writing nothing.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _eval_helpers import save_tiny_model, write_index_video
from _fuzz import assert_one_line, fuzz, tally
from hypothesis import example, given
from hypothesis import strategies as st

from vjepa_cli.errors import VjepaError
from vjepa_cli.models.load import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "m.safetensors").read_bytes()


def _split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def _outcome(target: str, path: Path) -> str:
    """load_model(path): 'loaded' (and it runs) or 'refused' (with a clear message); anything else fails."""
    try:
        m = load_model(path)
    except VjepaError as e:
        first, *table = str(e).split("\n")
        assert_one_line(VjepaError(first))
        assert all(line.startswith("  ") for line in table), str(e)  # only the shape table follows
        tally(target, "refused")
        return "refused"
    with torch.no_grad():
        out = m.encoder(torch.zeros(1, 3, m.config.num_frames, m.config.img_size, m.config.img_size))
    assert out.ndim == 3 and out.shape[0] == 1
    tally(target, "loaded")
    return "loaded"


@fuzz(40)
@given(cut=st.floats(0, 1, exclude_max=True))
@example(cut=0.0)
@example(cut=8 / 596096)
def test_truncated(good, tmp_path_factory, cut):
    p = tmp_path_factory.getbasetemp() / "trunc.safetensors"
    p.write_bytes(good[:int(len(good) * cut)])
    assert _outcome("model-file.truncated", p) == "refused"


@fuzz(60)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4),
       in_header=st.booleans())
def test_bytes_flipped(good, tmp_path_factory, flips, in_header):
    """Flips in the header (length, JSON) are refused; flips in the tensor data load other weights."""
    n = 8 + struct.unpack("<Q", good[:8])[0]
    data = bytearray(good)
    for where, xor in flips:
        i = int(where * n) if in_header else n + int(where * (len(good) - n))
        data[i] ^= xor
    p = tmp_path_factory.getbasetemp() / "flip.safetensors"
    p.write_bytes(bytes(data))
    _outcome("model-file.byte-flips", p)


@pytest.mark.parametrize("claim", ["length", "offsets"])
def test_header_claims_more_bytes_than_the_file_has(good, tmp_path, claim):
    if claim == "length":
        data = struct.pack("<Q", len(good) * 2) + good[8:]  # the header length alone
    else:
        header, body = _split(good)
        name = next(k for k in header if k != "__metadata__")
        start, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = [start, end + 4096]
        data = _join(header, body)
    p = tmp_path / "claims.safetensors"
    p.write_bytes(data)
    assert _outcome("model-file.claims-more", p) == "refused"


_junk = st.one_of(st.text(max_size=20), st.sampled_from(["", "{}", "[]", "null", "1", "true", "{\"arch\": 3}",
                                                        "{\"arch\": \"vit_huge\", \"depth\": 1}", "\ud7ff"]))


@fuzz(80)
@given(data=st.data())
def test_metadata_missing_or_garbled(good, tmp_path_factory, data):
    header, body = _split(good)
    meta = header["__metadata__"]
    cfg = json.loads(meta["config"])
    for key in data.draw(st.lists(st.sampled_from(sorted(meta)), unique=True, max_size=3), label="remove"):
        del meta[key]
    for key, value in data.draw(st.lists(st.tuples(st.sampled_from(
            [*sorted(header["__metadata__"]), "predictor_kind", "ac_config"]), _junk), max_size=2), label="garble"):
        meta[key] = value
    if data.draw(st.booleans(), label="edit the architecture"):  # a valid JSON config that may not fit the weights
        field = data.draw(st.sampled_from(sorted(cfg)), label="config field")
        cfg[field] = data.draw(st.sampled_from([0, 1, 3, 64, -1, None, "x", 2.5, [1], "rope", "vit_base"]))
        meta["config"] = json.dumps(cfg)
    header["__metadata__"] = meta
    p = tmp_path_factory.getbasetemp() / "meta.safetensors"
    p.write_bytes(_join(header, body))
    _outcome("model-file.metadata", p)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.float16, torch.bfloat16,
                                   torch.float64])
def test_wrong_dtype(good, tmp_path, dtype):
    from safetensors.torch import load, save

    header, _ = _split(good)
    tensors = {k: v.to(dtype) for k, v in load(good).items()}
    p = tmp_path / "dtype.safetensors"
    p.write_bytes(save(tensors, metadata=header["__metadata__"]))
    expected = "loaded" if dtype.is_floating_point else "refused"  # float weights are cast on load
    assert _outcome("model-file.dtype", p) == expected


@pytest.mark.parametrize("change", ["shape", "drop", "extra", "depth", "embed_dim"])
def test_wrong_shapes_or_architecture(good, tmp_path, change):
    from safetensors.torch import load, save

    header, _ = _split(good)
    meta, tensors = header["__metadata__"], load(good)
    name = "encoder.blocks.0.attn.qkv.weight"
    cfg = json.loads(meta["config"])
    if change == "shape":
        tensors[name] = tensors[name][:, :-1].contiguous()
    elif change == "drop":
        del tensors[name]
    elif change == "extra":
        tensors["encoder.blocks.9.attn.qkv.weight"] = tensors[name].clone()
    elif change == "depth":
        cfg["depth"] += 1
    else:
        cfg["embed_dim"], cfg["num_heads"] = 64, 2
    meta["config"] = json.dumps(cfg)
    p = tmp_path / "shape.safetensors"
    p.write_bytes(save(tensors, metadata=meta))
    with pytest.raises(VjepaError, match="do not fit the architecture"):
        load_model(p)
    assert _outcome("model-file.shape-or-arch", p) == "refused"


def _bad_files(good: bytes) -> dict[str, bytes]:
    header, body = _split(good)
    meta = header["__metadata__"]
    return {
        "truncated": good[:len(good) // 2],
        "claims-more": struct.pack("<Q", len(good) * 2) + good[8:],
        "no-config": _join({**header, "__metadata__": {k: v for k, v in meta.items() if k != "config"}}, body),
        "garbled-config": _join({**header, "__metadata__": {**meta, "config": "{not json"}}, body),
        "wrong-arch": _join({**header, "__metadata__": {**meta, "config": json.dumps(
            {**json.loads(meta["config"]), "depth": 3})}}, body),
        "empty": b"",
    }


def test_cli_extract_with_bad_model_files(good, tmp_path, run_cli):
    """What the user sees from `vjepa extract --model bad.safetensors ...`: the message, exit 1, nothing written."""
    video = write_index_video(tmp_path / "v.mp4", 12)
    for name, data in _bad_files(good).items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data)
        out = tmp_path / f"{name}-features.safetensors"
        r = run_cli("extract", video, "-o", out, "--model", bad, "--frames", "4")
        assert r.code == 1 and r.err.startswith("error: ") and "Traceback" not in r.err, (name, r)
        if name != "wrong-arch":  # the shape mismatch adds its table below the message
            assert len(r.err.strip().splitlines()) == 1, (name, r.err)
        assert not out.exists() and list(tmp_path.glob(f".{out.name}*")) == [], name
        tally("model-file.cli-extract", "refused")


@pytest.mark.timeout(120)
def test_cli_extract_with_a_truncated_model_in_its_own_process(good, tmp_path):
    """The same through `python -m vjepa_cli`, so nothing of pytest's stands between the error and stderr."""
    video = write_index_video(tmp_path / "v.mp4", 12)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_bad_files(good)["truncated"])
    out = tmp_path / "f.safetensors"
    r = subprocess.run([sys.executable, "-m", "vjepa_cli", "extract", str(video), "-o", str(out), "--model", str(bad),
                        "--frames", "4"], capture_output=True, text=True, timeout=100)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [r.stderr.strip()] and "it is truncated" in r.stderr
    assert not out.exists()
