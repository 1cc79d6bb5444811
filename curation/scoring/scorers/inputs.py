"""Decoding an image file into the tensor a metric's input policy asks for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import simplejpeg
import torch
from PIL import ExifTags, Image, ImageOps

from curation.scoring.scorers.base import InputPolicy
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, TooLarge, open_image


class InputError(Exception):
    """A per-image problem with a machine-readable reason (recorded, never raised to the user)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


ORIENTATION = ExifTags.Base.Orientation
# JPEG colour modes that libjpeg-turbo turns into RGB with exactly Pillow's pixels (tested);
# anything else (CMYK, MPO, PNG, ...) is decoded by Pillow.
_TURBO_JPEG_MODES = {"RGB", "L"}
# EXIF orientation -> the pixel permutation of Pillow's ImageOps.exif_transpose, as views.
_ORIENTED = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.transpose(1, 0, 2),  # TRANSPOSE
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],  # ROTATE_270 (90 degrees clockwise)
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # TRANSVERSE
    8: lambda a: a.transpose(1, 0, 2)[::-1],  # ROTATE_90
}


@contextmanager
def _decode_reasons(path: str) -> Iterator[None]:
    """Decoder exceptions as per-image reasons."""
    try:
        yield
    except FileNotFoundError:
        raise InputError("file_missing", f"{path} no longer exists") from None
    except TooLarge as exc:
        raise InputError(exc.reason, exc.detail) from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError("decode_failed", f"{type(exc).__name__}: {exc}") from None


def _rgb(img: Image.Image) -> Image.Image:
    # In place, and no convert for RGB files: each copy of a 1080x800 image costs ~0.3-0.8 ms
    # next to a ~3 ms decode.
    ImageOps.exif_transpose(img, in_place=True)  # loads the pixels
    return img if img.mode == "RGB" else img.convert("RGB")


def _turbo_jpeg(path: str, orientation: int) -> np.ndarray | None:
    """(H, W, 3) from libjpeg-turbo through simplejpeg, which writes RGB directly: 1.3x faster
    than Pillow, which decodes to 4 bytes per pixel and packs them on export. None if it cannot
    decode the file: Pillow then decodes it and reports its own error."""
    try:
        with open(path, "rb") as file:
            image = simplejpeg.decode_jpeg(file.read(), colorspace="RGB")
    except (OSError, ValueError):
        return None
    return _ORIENTED.get(orientation, lambda a: a)(image)


def apply_policy(img: Image.Image, policy: InputPolicy) -> np.ndarray:
    """(H, W, 3) uint8, following the policy (min_side is checked by the caller).

    uint8, not float: a quarter of the bytes through DataLoader workers, batch buffers and the
    host-to-GPU copy; `Scorer.score` scales to [0, 1] on the model's device. Height-width-channel
    as decoded: the batch collate transposes while copying into its buffer (`to_chw` alone).
    """
    if policy.mode == "pad_square":
        side = max(img.size)
        canvas = Image.new("RGB", (side, side), tuple(policy.fill))
        canvas.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
        img = canvas.resize((policy.size, policy.size), Image.Resampling.BICUBIC)
    elif policy.mode == "resize":
        img = img.resize((policy.size, policy.size), Image.Resampling.BICUBIC)
    elif policy.max_side and max(img.size) > policy.max_side:
        ratio = policy.max_side / max(img.size)
        size = (max(1, round(img.size[0] * ratio)), max(1, round(img.size[1] * ratio)))
        img = img.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def to_chw(image: np.ndarray) -> torch.Tensor:
    """(3, H, W) uint8 tensor from an (H, W, 3) array, in one transposing copy."""
    return torch.from_numpy(image.transpose(2, 0, 1).copy())


def check_min_side(width: int, height: int, policy: InputPolicy) -> None:
    if min(width, height) < policy.min_side:
        raise InputError("too_small", f"{width}x{height} < {policy.min_side}px side")


def load_hwc(
    path: str, policy: InputPolicy, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """(H, W, 3) uint8 for the policy: what decode workers hand to the batch collate.

    Pillow reads the header first (format, size, EXIF; over `max_pixels` it is `too_large`
    before any pixel is decoded); a JPEG kept at full resolution is then decoded by
    libjpeg-turbo (`_turbo_jpeg`)."""
    with _decode_reasons(path), open_image(path, max_pixels) as img:
        width, height = img.size
        if (
            img.format == "JPEG"
            and img.mode in _TURBO_JPEG_MODES
            and policy.mode == "full"
            and policy.output_hw(width, height) == (height, width)
            and (image := _turbo_jpeg(path, img.getexif().get(ORIENTATION, 1))) is not None
        ):
            check_min_side(image.shape[1], image.shape[0], policy)
            return image
        img = _rgb(img)
    check_min_side(*img.size, policy)
    return apply_policy(img, policy)


def load_for_policy(
    path: str, policy: InputPolicy, max_pixels: int = DEFAULT_MAX_PIXELS
) -> torch.Tensor:
    """(3, H, W) uint8, the layout `Scorer.score` takes."""
    return to_chw(load_hwc(path, policy, max_pixels))
