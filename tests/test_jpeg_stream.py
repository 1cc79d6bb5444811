"""Clean verifies a JPEG's whole entropy-coded stream: garbage in the middle is `corrupt`, a missing
end marker alone is a note (issue 26, item 4)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from curation.demo.photos import colour_photos
from curation.stage1.safe_decode import verify_jpeg_stream
from db.catalog import Catalog


def _photo_jpeg(size: tuple[int, int] = (1600, 1200), **save) -> bytes:
    buf = io.BytesIO()
    Image.open(colour_photos()[0]).convert("RGB").resize(size).save(buf, "JPEG", quality=92,
                                                                     **save)
    return buf.getvalue()


def _garbage_in_lower_half(data: bytes, length: int = 4000) -> bytes:
    """Random bytes written over the scan data below the middle of the image, as a bad sector
    or a broken transfer leaves it: the header and the upper half are intact."""
    start = data.index(b"\xff\xda") + (len(data) - data.index(b"\xff\xda")) * 2 // 3
    rng = np.random.default_rng(26)
    return data[:start] + rng.integers(0, 256, length, dtype=np.uint8).tobytes() + data[
        start + length:]


def test_clean_rejects_corrupt_middles_and_keeps_images_missing_only_their_end_marker(
    cli, catalog: Catalog, tmp_path
):
    """The issue's cases: the reduced-size decode hid garbage in the lower half (clean and
    dedup passed it), and a complete image missing only its 2-byte end marker was rejected as
    `truncated`."""
    pool = tmp_path / "pool"
    pool.mkdir()
    good = _photo_jpeg()
    progressive = _photo_jpeg(progressive=True)
    files = {
        "good.jpg": good,
        "corrupt.jpg": _garbage_in_lower_half(good),
        "corrupt_progressive.jpg": _garbage_in_lower_half(progressive),
        "no_end_marker.jpg": good[:-2],
        "truncated.jpg": good[: len(good) * 3 // 5],
    }
    for name, data in files.items():
        (pool / name).write_bytes(data)
    assert cli("ingest", pool, "--catalog", catalog.path, "--workers", "1")[0] == 0
    config = tmp_path / "c.toml"  # thresholds out of the way: only the decode verdict counts
    config.write_text("[clean]\nmin_short_side = 1\nlaplacian_min = 0\nlaplacian_max = 1e9\n")
    code, _, err = cli("clean", "--workers", "1", "--config", config, "--catalog", catalog.path)
    assert code == 0, err
    with catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT p.path, o.status, o.reason, o.detail FROM stage_outcomes o "
            "JOIN paths p USING (image_id) WHERE o.stage = 'clean'"
        ).fetchall()
    got = {path.rsplit("/", 1)[1]: outcome for path, *outcome in rows}
    assert got["good.jpg"][:2] == ["pass", None]
    assert got["corrupt.jpg"][:2] == ["reject", "corrupt"]
    assert got["corrupt.jpg"][2].startswith("entropy-coded data: ")
    assert got["corrupt_progressive.jpg"][:2] == ["reject", "corrupt"]
    assert got["no_end_marker.jpg"][:2] == ["pass", None]
    assert "missing_end_marker" in got["no_end_marker.jpg"][2]
    assert got["truncated.jpg"][:2] == ["reject", "truncated"]


def test_stream_check_is_silent_on_clean_files_and_trailing_data():
    good = _photo_jpeg((640, 480))
    assert verify_jpeg_stream(good) is None
    assert verify_jpeg_stream(good + b"camera trailer " * 20) is None  # data after the end
    cmyk = io.BytesIO()
    Image.open(colour_photos()[0]).convert("CMYK").save(cmyk, "JPEG")
    assert verify_jpeg_stream(cmyk.getvalue()) is None
    assert verify_jpeg_stream(good[:-2]) == good  # the marker added back
