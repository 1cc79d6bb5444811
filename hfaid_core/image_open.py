"""Opening image files under one pixel budget ([decode]), with optional format plugins registered.

Every decode in every process (score, export, caption, review previews, report) opens files
here: the declared size is checked against `max_pixels` from the header, before any pixel is
decoded, so one oversized file costs a header read instead of the process.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

from PIL import Image

from hfaid_core.settings.decode import DecodeConfig

# Our check (configured, before load) replaces Pillow's global bomb guard, whose fixed 89/179 MP
# limits would override the configured one and refuse even to read a bomb's header.
Image.MAX_IMAGE_PIXELS = None

# Optional Pillow plugins (extras `heif`, `jxl`): each registers its formats when imported.
# Pillow itself decodes AVIF where it was built with libavif (Pillow >= 11.3 wheels).
_PLUGINS = (
    ("pillow_heif", "register_heif_opener"),  # HEIF/HEIC (pip install 'hfaid[heif]')
    ("pillow_avif", None),  # AVIF for a Pillow without it (pip install 'hfaid[avif]')
    ("pillow_jxl", None),  # JPEG XL (pip install 'hfaid[jxl]')
)
DEFAULT_MAX_PIXELS: int = DecodeConfig.max_pixels
# Bytes per pixel a full decode holds at its peak: Pillow keeps RGB as 4 bytes, and the array
# handed on is a 3-byte copy made while Pillow's image is still alive.
DECODE_BYTES_PER_PIXEL = 7


def register_plugins() -> list[str]:
    """Import the installed format plugins (idempotent); returns the modules that loaded."""
    loaded = []
    for module, register in _PLUGINS:
        with suppress(ImportError):
            plugin = importlib.import_module(module)
            if register:
                getattr(plugin, register)()
            loaded.append(module)
    return loaded


register_plugins()


class TooLarge(Exception):
    """An image over the pixel budget: recorded per image with reason `too_large`."""

    reason = "too_large"

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        self.detail = (
            f"{width}x{height} = {width * height:,} pixels > [decode] max_pixels {max_pixels:,}"
        )
        super().__init__(self.detail)


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raise TooLarge when a declared size is over the budget."""
    if width * height > max_pixels:
        raise TooLarge(width, height, max_pixels)


@contextmanager
def open_image(source: str | IO[bytes], max_pixels: int) -> Iterator[Image.Image]:
    """Image.open, then the budget check on the declared size; pixels load only inside."""
    with Image.open(source) as image:
        check_pixels(image.width, image.height, max_pixels)
        yield image


def decode_bytes(width: int, height: int) -> int:
    """Peak memory of decoding one image of this size in full."""
    return DECODE_BYTES_PER_PIXEL * width * height
