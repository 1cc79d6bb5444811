"""The top rows of an image at full resolution, as luma, without decoding the rest of a JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFile

# 64 rows: four 4:2:0 MCU rows, so a JPEG decode stops on an MCU boundary; enough for a
# noise estimate from a few 64x64 crops and for seven horizontal 8x8 block boundaries.
BAND_ROWS = 64


def jpeg_top_band(data: bytes, rows: int = BAND_ROWS) -> np.ndarray | None:
    """Luma of the first `rows` rows of a JPEG, decoded at full size in stored orientation.

    libjpeg decodes top to bottom, so stopping after `rows` rows skips the entropy decoding
    and inverse DCT of everything below: on 2-4 MP photos this costs ~6% of a full decode.
    Pillow has no public call for it; its decoder is given a tile `rows` rows high (the
    decoder then reports the unread rest as broken data, which is expected here). Returns
    None where that does not apply, and the caller measures without a band.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("JPEG", "MPO") or len(im.tile) != 1:
                return None
            width, height = im.size
            rows = min(rows, height)
            im.draft("L", (width, height))  # luma straight from libjpeg: no chroma, no colour
            tile = im.tile[0]
            im.tile = [tile._replace(extents=(0, 0, width, rows))]
            im._size = (width, rows)
            previous = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = True  # the rows after `rows` are left unread
            try:
                im.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = previous
            band = im if im.mode == "L" else im.convert("L")  # CMYK / YCCK files
            return np.asarray(band)
    except Exception:  # an odd JPEG (12-bit, arithmetic coding): measured without a band
        return None


def frame_top_band(frame: Image.Image, rows: int = BAND_ROWS) -> np.ndarray:
    """Luma (ITU-R 601, as libjpeg's Y) of the first `rows` rows of a decoded RGB frame."""
    width, height = frame.size
    return np.asarray(frame.crop((0, 0, width, min(rows, height))).convert("L"))
