"""A dependency-free PNG encoder for attention maps (numpy only), written atomically."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from headlab.io.atomic import write_atomically

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colours of no and of the map's largest weight: darker = more attention, as the paper's maps.
LIGHT = np.array([247, 251, 255], dtype=np.float64)
DARK = np.array([8, 48, 107], dtype=np.float64)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(values: np.ndarray, scale: int = 8) -> bytes:
    """An RGB PNG of a (rows, cols) map, each cell scale x scale pixels, scaled to the map's maximum."""
    weights = np.asarray(values, dtype=np.float64)
    peak = float(weights.max()) if weights.size else 0.0
    level = np.clip(weights / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(weights)
    rgb = np.rint(LIGHT + level[..., None] * (DARK - LIGHT)).astype(np.uint8)  # (rows, cols, 3)
    image = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)  # (rows*scale, cols*scale, 3)
    height, width = image.shape[:2]
    raw = b"".join(b"\x00" + line.tobytes() for line in image)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike[str], values: np.ndarray, scale: int = 8) -> Path:
    """`png_bytes` written atomically (`headlab.io.atomic`)."""
    data = png_bytes(values, scale)
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))
