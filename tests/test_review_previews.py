"""Prepared previews: fit view size, full-resolution 1:1 crops, disk cache and bounded memory."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from hfaid_core.settings.review import ReviewConfig
from review_app.previews import Prefetcher, PreviewCache, crop_boxes, failure
from tests.conftest import write_photo_pool


def test_fit_view_and_one_to_one_crops(tmp_path):
    (path,) = write_photo_pool(tmp_path / "pool", 1, size=(1600, 1200))
    cfg = ReviewConfig(preview_max_side=800, crop_size=256, crops=3, preview_quality=95)
    cache = PreviewCache(tmp_path / "previews", cfg)
    preview = cache.get("ab" * 32, str(path))
    assert (preview.width, preview.height) == (1600, 1200)
    assert Image.open(io.BytesIO(preview.fit)).size == (800, 600)
    assert len(preview.crops) == 3
    original = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    for crop, (x0, y0, x1, y1) in zip(preview.crops, crop_boxes(Image.open(path), 256, 3),
                                      strict=True):
        pixels = np.asarray(Image.open(io.BytesIO(crop)), dtype=np.int16)
        assert pixels.shape == (256, 256, 3)  # 1:1, not resampled
        assert np.abs(pixels - original[y0:y1, x0:x1]).mean() < 3  # only JPEG error
    # a second cache (another server process) reads the prepared files instead of rebuilding
    again = PreviewCache(tmp_path / "previews", cfg).get("ab" * 32, "/nonexistent")
    assert again == preview


def test_memory_cache_is_bounded(tmp_path):
    paths = write_photo_pool(tmp_path / "pool", 6, size=(640, 480))
    cfg = ReviewConfig(memory_cache_mb=0, crops=1)
    cache = PreviewCache(tmp_path / "previews", cfg)
    cache.max_bytes = 3 * 60_000  # room for about three previews
    for i, path in enumerate(paths):
        cache.get(f"{i:064x}", str(path))
        assert cache.memory_bytes <= cache.max_bytes
    assert 0 < len(cache._memory) < 6
    assert cache.prepare([(f"{i:064x}", str(p)) for i, p in enumerate(paths)]) == 0  # all on disk


def test_prefetcher_builds_the_upcoming_previews_in_the_background(tmp_path):
    paths = write_photo_pool(tmp_path / "pool", 4, size=(640, 480))
    items = [(f"{i:064x}", str(p)) for i, p in enumerate(paths)]
    items.append(("f" * 64, str(tmp_path / "missing.jpg")))  # unreadable: skipped, not fatal
    cache = PreviewCache(tmp_path / "previews", ReviewConfig(crops=1))
    Prefetcher(cache, lambda: items, min_interval_s=0).poke()
    deadline = time.monotonic() + 60
    while not all(cache.has(i) for i, _ in items[:4]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(cache.has(i) for i, _ in items[:4]) and not cache.has("f" * 64)
    # a click's get() now reads the built preview (the path is not opened again)
    assert cache.get(items[0][0], "/nonexistent").width == 640


def test_a_small_image_is_never_enlarged_and_crops_keep_every_pixel(tmp_path):
    (path,) = write_photo_pool(tmp_path / "pool", 1, size=(400, 270))
    preview = PreviewCache(tmp_path / "previews", ReviewConfig()).get("cd" * 32, str(path))
    assert Image.open(io.BytesIO(preview.fit)).size == (400, 270)
    assert [Image.open(io.BytesIO(c)).size for c in preview.crops] == [(270, 270)]
    assert preview.boxes == ((65, 0, 335, 270),)
    # 4:4:4 JPEG: colour is not halved, so fringes in a crop are the image's own
    assert [c[1:3] for c in Image.open(io.BytesIO(preview.crops[0])).layer] == [(1, 1)] * 3


def test_the_loupe_gets_the_original_file_or_a_lossless_copy(tmp_path):
    (jpg,) = write_photo_pool(tmp_path / "pool", 1, size=(200, 150))
    cache = PreviewCache(tmp_path / "previews", ReviewConfig())
    assert cache.original("ab" * 32, str(jpg), "JPEG") == (jpg, "image/jpeg")
    tif = tmp_path / "pool" / "x.tif"
    Image.open(jpg).rotate(90, expand=True).save(tif)
    png, media = cache.original("ef" * 32, str(tif), "TIFF")
    assert media == "image/png" and Image.open(png).size == (150, 200)
    with pytest.raises(FileNotFoundError):
        cache.original("12" * 32, str(tmp_path / "gone.jpg"), "JPEG")


def test_why_a_file_cannot_be_shown(tmp_path):
    cache = PreviewCache(tmp_path / "previews", ReviewConfig())
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 this is not a jpeg" * 10)
    with pytest.raises(Exception) as broken:
        cache.get("aa" * 32, str(garbage))
    assert failure(broken.value)[0] == "file_unreadable"
    with pytest.raises(FileNotFoundError) as missing:
        cache.get("bb" * 32, str(tmp_path / "nothing.jpg"))
    assert failure(missing.value)[0] == "file_missing"

    class TooLarge(ValueError):  # what a decode guard raises: its reason is recorded as is
        reason = "too_large"

    assert failure(TooLarge("120 MP is over the 80 MP budget")) == (
        "too_large", "120 MP is over the 80 MP budget")
