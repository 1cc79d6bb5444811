"""Best/worst montages: thumbnails of the extreme images of one metric with their values."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from hfaid_core.image_open import DEFAULT_MAX_PIXELS, TooLarge, open_image

TILE = 128
LABEL_H = 16


def _tile(path: str | None, caption: str) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE + LABEL_H), "white")
    try:
        with open_image(str(Path(path)), DEFAULT_MAX_PIXELS) as img:  # type: ignore[arg-type]
            img.draft("RGB", (TILE * 2, TILE * 2))  # JPEG: decode at reduced size, much faster
            thumb = ImageOps.fit(ImageOps.exif_transpose(img).convert("RGB"), (TILE, TILE))
        tile.paste(thumb, (0, 0))
    except (OSError, TypeError, ValueError, TooLarge):
        # A missing or unreadable file still gets a labelled tile: the report never fails on one.
        ImageDraw.Draw(tile).rectangle((0, 0, TILE - 1, TILE - 1), fill="#cccccc")
        ImageDraw.Draw(tile).text((8, TILE // 2 - 6), "file unavailable", fill="black")
    ImageDraw.Draw(tile).text((4, TILE + 2), caption, fill="black")
    return tile


def montage_png(rows: list[tuple[str, list[tuple[str | None, float]]]]) -> bytes:
    """rows: (row label, [(path, value), ...]); one strip of tiles per row."""
    label_w = 60
    width = label_w + TILE * max((len(items) for _, items in rows), default=1)
    sheet = Image.new("RGB", (width, (TILE + LABEL_H) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, items) in enumerate(rows):
        y = r * (TILE + LABEL_H)
        draw.text((6, y + TILE // 2), label, fill="black")
        for c, (path, value) in enumerate(items):
            sheet.paste(_tile(path, f"{value:.4g}"), (label_w + c * TILE, y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
