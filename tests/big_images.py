"""Oversized images for pixel-budget tests: header-only bombs and a real ~100 MP PNG."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from curation.demo.photos import colour_photos


def jpeg_header_only(path: Path, width: int, height: int) -> Path:
    """A small JPEG whose SOF header declares width x height (what a bomb looks like)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A small PNG whose IHDR declares width x height (CRC fixed, so it opens cleanly)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 150)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def photo_png(path: Path, width: int, height: int) -> Path:
    """A real PNG of width x height: a bundled photo tiled (about 0.7 s per 10 MP to write)."""
    photo = np.asarray(Image.open(colour_photos()[0]).convert("RGB"))[:, :, ::-1]
    reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
    cv2.imwrite(str(path), np.tile(photo, reps)[:height, :width], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path
