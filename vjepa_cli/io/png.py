"""Minimal PNG writer and reader (8-bit RGB/RGBA/grey, non-interlaced), numpy + zlib only.

Enough for our own pictures (plots, feature colourings, masks) and for goal/start images saved by common
tools. PNG spec: https://www.w3.org/TR/png-3/ (chunks, CRC-32, the five scanline filters).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import atomic_path

_SIG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(img: np.ndarray) -> bytes:
    """uint8 [H, W], [H, W, 3] or [H, W, 4] -> PNG bytes."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8, got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    h, w, c = img.shape
    ctype = {1: 0, 3: 2, 4: 6}.get(c)
    if ctype is None:
        raise ValueError(f"encode_png expects 1, 3 or 4 channels, got {c}")
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * c)], axis=1)  # filter 0 per row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)
    return _SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b"")


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write `img` (uint8 [H, W(, C)]) to `path` atomically."""
    data = encode_png(img)
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _unfilter(data: bytes, h: int, stride: int, bpp: int) -> np.ndarray:
    out = np.zeros((h, stride), np.uint8)
    buf = np.frombuffer(data, np.uint8)
    prev = np.zeros(stride, np.int32)
    pos = 0
    for y in range(h):
        ftype = buf[pos]
        line = buf[pos + 1 : pos + 1 + stride].astype(np.int32)
        pos += stride + 1
        if ftype == 0:
            cur = line
        elif ftype == 2:
            cur = (line + prev) & 0xFF
        elif ftype in (1, 3, 4):  # these depend on the reconstructed left neighbour: go pixel by pixel
            cur = np.zeros(stride, np.int32)
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = prev[x]
                if ftype == 1:
                    pred = a
                elif ftype == 3:
                    pred = (a + b) // 2
                else:
                    cc = prev[x - bpp] if x >= bpp else 0
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                cur[x] = (line[x] + pred) & 0xFF
        else:
            raise ValueError(f"bad PNG filter type {ftype}")
        out[y] = cur
        prev = cur
    return out


def read_png(path: str | Path) -> np.ndarray:
    """Read an 8-bit non-interlaced PNG as uint8 RGB [H, W, 3] (grey and alpha are converted)."""
    path = Path(path)
    if not path.exists():
        raise VjepaError(f"image not found: {path}")
    data = path.read_bytes()
    if not data.startswith(_SIG):
        raise VjepaError(f"{path} is not a PNG file")
    pos, idat, hdr = 8, [], None
    try:
        while pos < len(data):
            (n,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + n]
            pos += 12 + n
            if kind == b"IHDR":
                hdr = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
        if hdr is None:
            raise ValueError("no IHDR chunk")
        w, h, depth, ctype, _, _, interlace = hdr
        if depth != 8 or interlace != 0 or ctype not in _CHANNELS:
            raise VjepaError(f"{path}: only 8-bit, non-interlaced grey/RGB/RGBA PNGs are supported")
        c = _CHANNELS[ctype]
        px = _unfilter(zlib.decompress(b"".join(idat)), h, w * c, c).reshape(h, w, c)
    except (struct.error, zlib.error, ValueError) as e:
        raise VjepaError(f"{path} is a corrupt PNG file: {e}") from None
    if c in (1, 2):
        px = np.repeat(px[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(px[:, :, :3])
