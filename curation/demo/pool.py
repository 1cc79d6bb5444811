"""Build the demo pool: real photos, varied crops, and realistic planted defects."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from curation.demo.photos import colour_photos, gray_photos
from hfaid_core.errors import HfaidError


def build_demo_pool(out_dir: Path, n_clean: int = 240, seed: int = 0) -> dict[str, int]:
    """Write ~n_clean good crops plus planted defects under out_dir; returns counts per kind."""
    photos = colour_photos()
    if len(photos) < 5:
        raise HfaidError("too few bundled photos found (is scikit-image installed?)")
    rng = random.Random(seed)
    bases = [Image.open(p).convert("RGB") for p in photos]
    good_dir, bad_dir = out_dir / "pool" / "good", out_dir / "pool" / "planted"
    good_dir.mkdir(parents=True, exist_ok=True)
    bad_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}

    def save(img: Image.Image, folder: Path, name: str, kind: str, **kw) -> Path:
        path = folder / name
        img.save(path, **kw)
        counts[kind] = counts.get(kind, 0) + 1
        return path

    crops = []
    for i in range(n_clean):
        crop = _random_crop(bases[i % len(bases)], rng)
        crops.append(crop)
        save(crop, good_dir, f"photo_{i:04d}.jpg", "clean", quality=92)
    defects: list[tuple[str, Callable[[Image.Image], Image.Image], dict]] = [
        (
            "blur",
            lambda im: im.filter(ImageFilter.GaussianBlur(rng.uniform(4, 8))),
            {"quality": 92},
        ),
        ("noise", lambda im: _add_noise(im, rng.uniform(25, 45), rng), {"quality": 95}),
        ("jpeg", lambda im: im, {"quality": 4}),
        ("grayscale", lambda im: im.convert("L").convert("RGB"), {"quality": 92}),
        ("tiny", lambda im: im.resize((48, 36)), {"quality": 92}),
        ("aspect", lambda im: im.resize((im.width, max(8, im.width // 6))), {"quality": 92}),
    ]
    for kind, make, kw in defects:
        for j in range(6):
            save(make(crops[rng.randrange(len(crops))]), bad_dir, f"{kind}_{j}.jpg", kind, **kw)
    for j, src in enumerate(rng.sample(crops, 8)):  # near-duplicates: resized + re-encoded copies
        w, h = src.size
        copy = src.resize((int(w * 0.8), int(h * 0.8)), Image.Resampling.LANCZOS)
        save(copy, bad_dir, f"near_duplicate_{j}.jpg", "near_duplicate", quality=80)
    for g in gray_photos():
        save(Image.open(g).convert("L"), bad_dir, f"gray_{g.stem}.png", "grayscale")
    _write_broken_files(bad_dir, counts)
    return counts


def _random_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    scale = rng.uniform(0.6, 1.0)
    cw, ch = max(64, int(w * scale)), max(64, int(h * scale))
    x, y = rng.randrange(0, w - cw + 1), rng.randrange(0, h - ch + 1)
    crop = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def _add_noise(img: Image.Image, sigma: float, rng: random.Random) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, sigma, arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


def _write_broken_files(folder: Path, counts: dict[str, int]) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 30, 30)).save(buf, format="JPEG")
    broken = {
        "truncated.jpg": buf.getvalue()[: len(buf.getvalue()) // 2],
        "empty.jpg": b"",
        "not_an_image.jpg": b"this is a text file pretending to be a JPEG\n",
    }
    for name, data in broken.items():
        (folder / name).write_bytes(data)
        counts["broken"] = counts.get("broken", 0) + 1
