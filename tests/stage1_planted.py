"""A stage-1 acceptance pool: distinct real-photo crops plus six of each planted defect."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from curation.demo.photos import colour_photos

PER_TYPE = 6
QUALITY_DEFECTS = ("noise", "blur", "jpeg", "grayscale", "tiny")
# Crops closer than this in imagehash's pHash are redrawn: the clean set holds distinct images
# (stage 1's near-duplicate cut is 6), so dedup has nothing to find among them.
_DISTINCT = 12


def _distinct_crops(count: int, rng: random.Random) -> list[Image.Image]:
    """Random crops of 60-100% of a bundled photo's sides (as the demo pool's), half flipped."""
    import imagehash

    photos = [Image.open(p).convert("RGB") for p in colour_photos()]
    crops, hashes = [], []
    while len(crops) < count:
        photo = photos[len(crops) % len(photos)]
        width, height = photo.size
        scale = rng.uniform(0.6, 1.0)
        cw, ch = int(width * scale), int(height * scale)
        x, y = rng.randrange(width - cw + 1), rng.randrange(height - ch + 1)
        crop = photo.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        digest = imagehash.phash(crop)
        if all(digest - h > _DISTINCT for h in hashes):
            crops.append(crop)
            hashes.append(digest)
    return crops


def _noisy(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    """Luminance noise of `sigma` (0-255), the grain a camera JPEG keeps: the same draw on the
    three channels (independent draws would show ~0.67 sigma in luma; JPEG's 4:2:0 and
    cameras' noise reduction remove most chroma noise)."""
    arr = np.asarray(img, dtype=np.float64)
    noise = np.random.default_rng(seed).normal(0.0, sigma, arr.shape[:2])[..., None]
    return Image.fromarray(np.clip(arr + noise, 0, 255).round().astype(np.uint8))


def build_planted_pool(folder: Path, n_clean: int = 220, seed: int = 0) -> dict[str, str]:
    """Write the pool; returns file name -> kind ("clean" or the planted defect).

    Quality defects are made from crops held out of the clean set, so a missed defect cannot
    be caught by accident as a near-duplicate of its clean source. Near-duplicates are 0.8x
    re-saves of clean tiles and exact copies are byte copies: those must be caught by dedup
    and by ingest. Aspect-ratio defects are 3:1 strips of the photos at least 768 px wide.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    held_out = len(QUALITY_DEFECTS) * PER_TYPE
    crops = _distinct_crops(n_clean + held_out, rng)
    clean_names = []
    for k, crop in enumerate(crops[held_out:]):
        name = f"clean_{k:03d}.jpg"
        crop.save(folder / name, quality=rng.randint(88, 95))
        kinds[name] = "clean"
        clean_names.append(name)

    def plant(kind: str, j: int, img: Image.Image, **save) -> None:
        name = f"{kind}_{j}.{'png' if save.get('format') == 'PNG' else 'jpg'}"
        img.save(folder / name, **save)
        kinds[name] = kind

    for d, kind in enumerate(QUALITY_DEFECTS):
        for j in range(PER_TYPE):
            tile = crops[d * PER_TYPE + j]
            if kind == "noise":  # sensor-like noise, kept nearly intact by a high quality
                plant(kind, j, _noisy(tile, rng.uniform(10, 25), rng.randrange(2**32)), quality=95)
            elif kind == "blur":
                plant(kind, j, tile.filter(ImageFilter.GaussianBlur(rng.uniform(3, 6))), quality=92)
            elif kind == "jpeg":
                plant(kind, j, tile, quality=rng.randint(2, 10))
            elif kind == "grayscale":
                plant(kind, j, tile.convert("L").convert("RGB"), quality=92)
            else:  # tiny
                plant(kind, j, tile.resize((48, 36), Image.Resampling.LANCZOS), quality=92)
    wide = [Image.open(p).convert("RGB") for p in colour_photos()]
    wide = [p for p in wide if p.width >= 768]
    for j in range(PER_TYPE):
        photo = wide[j % len(wide)]
        top = rng.randrange(photo.height - 256 + 1)
        plant("aspect", j, photo.crop((0, top, 768, top + 256)), quality=92)
    for j, name in enumerate(rng.sample(clean_names, PER_TYPE)):
        with Image.open(folder / name) as src:
            small = src.resize((int(src.width * 0.8), int(src.height * 0.8)), Image.LANCZOS)
            plant("near_duplicate", j, small, quality=85)
    for j, name in enumerate(rng.sample(clean_names, PER_TYPE)):
        shutil.copyfile(folder / name, folder / f"exact_copy_{j}.jpg")
        kinds[f"exact_copy_{j}.jpg"] = "exact_copy"
    return kinds
