"""One sample's files: original (or resized) image bytes, caption, metadata, optional LR pair."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from curation.export.plan import FORMAT_EXT, Item
from curation.ingest.scan import content_id
from hfaid_core.errors import HfaidError
from hfaid_core.image_open import DEFAULT_MAX_PIXELS, TooLarge, open_image
from hfaid_core.settings.degrade import DegradationConfig

_RESIZE = re.compile(r"^(none|(max|short|crop):(\d+))$")
# `{key}.lr.png`: webdataset and datasets split at the FIRST dot, so the field is "lr.png"
LR_FIELD = "lr.png"
DEGRADATION_FIELD = "degradation.txt"


@dataclass(frozen=True)
class SampleOptions:
    resize: str = "none"
    image_format: str = "keep"
    jpeg_quality: int = 95
    pairs: bool = False
    scale: int = 4
    seed: int = 0
    degradation: DegradationConfig | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS  # [decode]: larger images are skipped as `too_large`


def check_resize(policy: str) -> None:
    m = _RESIZE.match(policy)
    if not m or (m.group(3) is not None and int(m.group(3)) < 8):
        raise HfaidError(
            f"--resize {policy!r} is not none, max:N (longer side <= N), short:N (shorter side "
            "<= N) or crop:N (shorter side N, then centre crop N x N), with N >= 8"
        )


# Skip reasons that mean the image could not be exported (not that the options left it out).
FAILURE_REASONS = ("file_missing", "read_error", "file_changed", "decode_error")


@dataclass
class Sample:
    """Either the files of a sample (name suffix -> bytes, in write order) or why it was skipped."""

    key: str
    image_id: str
    files: list[tuple[str, bytes]]
    skip_reason: str | None = None
    skip_detail: str = ""
    image_name: str = ""


def build_sample(item: Item, opts: SampleOptions) -> Sample:
    """Read, verify and (if asked) transform one image; never raises for one bad image."""
    try:
        data = open(item.path, "rb").read()  # noqa: SIM115 - one read, closed by refcount
    except FileNotFoundError:
        return Sample(item.key, item.image_id, [], "file_missing", item.path)
    except OSError as exc:
        return Sample(item.key, item.image_id, [], "read_error", f"{item.path}: {exc}")
    # The catalog's id is the content hash of the bytes reviewers saw: never export a changed
    # file (content_id is ingest's own hash function, whichever it is).
    if content_id(data) != item.image_id:
        return Sample(item.key, item.image_id, [], "file_changed", item.path)
    meta = dict(item.meta)
    try:
        image_bytes, ext, size = _image_bytes(data, item.format, opts)
        files: list[tuple[str, bytes]] = []
        extra_meta: dict[str, Any] = {}
        if opts.pairs:
            lr, params, text = _pair(image_bytes, item.image_id, opts)
            files += [(LR_FIELD, lr), (DEGRADATION_FIELD, text.encode())]
            extra_meta = {"degradation": text, "degradation_params": json.dumps(params,
                                                                                sort_keys=True)}
    except TooLarge as exc:
        return Sample(item.key, item.image_id, [], exc.reason, exc.detail)
    except Exception as exc:  # noqa: BLE001 - a broken image is a skip with its reason
        return Sample(item.key, item.image_id, [], "decode_error", f"{type(exc).__name__}: {exc}")
    if size is not None:
        meta["width"], meta["height"] = size
    meta["key"] = item.key
    meta.update(extra_meta)
    body = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()
    head = [(ext, image_bytes), ("json", body), ("txt", item.caption.encode())]
    return Sample(item.key, item.image_id, head + files, image_name=f"{item.key}.{ext}")


def stored_extension(fmt: str | None, resize: str, image_format: str) -> str:
    """Extension (= WebDataset field) of the stored image: the original's unless re-encoded."""
    if image_format != "keep":
        return image_format
    if resize == "none":
        return FORMAT_EXT.get(fmt or "", (fmt or "bin").lower())
    return "png" if fmt == "PNG" else "jpg"  # re-encoded: lossless stays lossless


def _image_bytes(data: bytes, fmt: str | None, opts: SampleOptions
                 ) -> tuple[bytes, str, tuple[int, int] | None]:
    """The bytes to store, their extension and new (width, height) if re-encoded."""
    target = stored_extension(fmt, opts.resize, opts.image_format)
    if opts.resize == "none" and opts.image_format == "keep":
        return data, target, None
    from PIL import ImageOps

    out = io.BytesIO()
    # In place and without a copy for RGB files: a 100 MP image is 400 MB per copy in Pillow.
    with open_image(io.BytesIO(data), opts.max_pixels) as im:
        ImageOps.exif_transpose(im, in_place=True)
        img = _resize(im if im.mode == "RGB" else im.convert("RGB"), opts.resize)
        if target == "png":
            img.save(out, format="PNG", optimize=False)
        else:
            img.save(out, format="JPEG", quality=opts.jpeg_quality, subsampling=0)
        return out.getvalue(), target, img.size


def _resize(img: Any, policy: str) -> Any:
    from PIL import Image

    if policy == "none":
        return img
    kind, n = policy.split(":")
    n = int(n)
    w, h = img.size
    if kind == "max":
        f = n / max(w, h)
    elif kind == "short":
        f = n / min(w, h)
    else:  # crop: shorter side to n (diffusers' Resize + CenterCrop), never upscaling
        f = n / min(w, h)
    if f < 1.0:
        img = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS)
    if kind == "crop":
        w, h = img.size
        side = min(n, w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    return img


def _pair(image_bytes: bytes, image_id: str, opts: SampleOptions) -> tuple[bytes, dict, str]:
    """Degrade the stored image; the generator is seeded by (seed, image_id): order-independent."""
    import cv2
    import numpy as np

    from curation.degrade.realesrgan import degrade, describe_degradation

    with open_image(io.BytesIO(image_bytes), opts.max_pixels) as im:
        rgb = np.asarray(im.convert("RGB"))
    id_seed = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "big")
    rng = np.random.default_rng([opts.seed, id_seed])
    lr, params = degrade(rgb, rng, opts.scale, opts.degradation)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise ValueError("PNG encoding of the low-resolution image failed")
    return buf.tobytes(), params, describe_degradation(params, opts.degradation)
