"""Generate a benchmark pool of distinct 2-4 MP real-photo JPEGs from the bundled photographs."""

from __future__ import annotations

import argparse
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageEnhance

from curation.demo.photos import colour_photos

SIZES = [(1920, 1280), (2048, 1536), (2304, 1536), (1600, 1200), (2400, 1600), (1728, 1296)]


def _make(args: tuple[int, str, int]) -> None:
    index, out_dir, seed = args
    path = Path(out_dir) / f"photo_{index:06d}.jpg"
    if path.exists():
        return
    rng = random.Random(seed * 1_000_003 + index)
    sources = colour_photos()
    base = Image.open(sources[index % len(sources)]).convert("RGB")
    w, h = base.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x, y = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
    size = rng.choice(SIZES)
    if ch > cw:
        size = size[::-1]
    img = base.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))
    tmp = path.with_name(f".tmp-{path.name}")
    img.save(tmp, quality=rng.randint(85, 95))
    os.replace(tmp, path)


def build_photo_pool(out_dir: Path, count: int, seed: int = 0, workers: int = 2) -> list[Path]:
    """Create (or complete) `count` JPEGs in out_dir; existing files are kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_make, [(i, str(out_dir), seed) for i in range(count)], chunksize=16))
    return [out_dir / f"photo_{i:06d}.jpg" for i in range(count)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    build_photo_pool(args.out_dir, args.count)
