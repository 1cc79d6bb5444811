"""Ingest under change: files written while read, content replaced under a path, extensions it
passes over, formats behind plugins (issue 26, items 5 and 9)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from curation.ingest.scan import IngestWorker, scan
from curation.ingest.sources import Candidate
from curation.selection.select import input_size
from db.catalog import Catalog
from db.outcomes import write_outcomes
from db.stage1 import dedup_candidates
from tests.conftest import write_photo_pool


def _rows(catalog: Catalog, sql: str) -> list[tuple]:
    with catalog.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


def _ingest(cli, catalog: Catalog, *sources: Path) -> tuple[int, str, str]:
    return cli("ingest", *sources, "--catalog", catalog.path, "--workers", "1")


class _SlowWriter:
    """Keeps appending to a file, as a download or a copy in progress does."""

    def __init__(self, path: Path, head: bytes) -> None:
        self.path, self.stop = path, threading.Event()
        path.write_bytes(head)
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        with open(self.path, "ab", buffering=0) as out:
            while not self.stop.is_set():
                out.write(b"\0" * 512)
                time.sleep(0.001)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def test_a_file_being_written_is_file_changing_not_a_half_hashed_image(cli, catalog, tmp_path):
    """The issue's case: a file being written was hashed half-written, recorded with the
    finished file's header, then measured as the finished file under that id. Now it is
    re-read once, then recorded as `file_changing` with no image; the next ingest, once it is
    written, reads it."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 3, size=(160, 120))
    photo = (pool / "img_00000.jpg").read_bytes()
    writer = _SlowWriter(pool / "growing.jpg", photo[: len(photo) // 2])
    try:
        code, out, err = _ingest(cli, catalog, pool)
    finally:
        writer.close()
    assert code == 0, err
    (path, image_id, error, size), = _rows(
        catalog, "SELECT path, image_id, error, size FROM paths WHERE path LIKE '%growing.jpg'")
    assert (image_id, error, size) == (None, "file_changing", None)
    assert _rows(catalog, "SELECT count(*) FROM images") == [(3,)]

    (pool / "growing.jpg").write_bytes(photo[::-1])  # finished (other content than img_00000)
    assert _ingest(cli, catalog, pool)[0] == 0
    (image_id, error), = _rows(
        catalog, "SELECT image_id, error FROM paths WHERE path LIKE '%growing.jpg'")
    assert error is None and image_id is not None


def test_a_file_changed_between_scan_and_hash_is_read_again_and_recorded_as_it_is(tmp_path):
    """Sizes and mtimes come from the scan; a file rewritten after it is read once more, and its
    record carries the size and mtime of the bytes that were hashed."""
    path = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(path)
    scanned = scan([Candidate(str(path), "t")])
    Image.new("RGB", (80, 48), (10, 20, 30)).save(path)  # rewritten after the scan
    row = IngestWorker().process(scanned).to_pylist()[0]
    assert row["error"] is None and row["width"] == 80
    assert row["size"] == path.stat().st_size and row["mtime"] == path.stat().st_mtime


def test_an_image_left_without_a_path_is_in_no_stage_and_no_count(cli, catalog, tmp_path):
    """The issue's ghost: re-ingesting a path whose content changed left the old image with no
    path but with its pass outcomes, counted by `funnel` and selectable."""
    pool = tmp_path / "pool"
    write_photo_pool(pool, 4, size=(160, 120))
    assert _ingest(cli, catalog, pool)[0] == 0
    config = tmp_path / "c.toml"
    config.write_text("[clean]\nmin_short_side = 1\nlaplacian_min = 0\nlaplacian_max = 1e9\n"
                      "min_entropy = 0\n")
    assert cli("clean", "--workers", "1", "--config", config, "--catalog", catalog.path)[0] == 0
    assert cli("dedup", "--config", config, "--catalog", catalog.path)[0] == 0
    (old_id,), = _rows(catalog, "SELECT image_id FROM paths WHERE path LIKE '%img_00000.jpg'")
    Image.open(pool / "img_00001.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        pool / "img_00000.jpg")  # new content under the old path
    assert _ingest(cli, catalog, pool)[0] == 0
    assert cli("clean", "--workers", "1", "--config", config, "--catalog", catalog.path)[0] == 0
    assert cli("dedup", "--config", config, "--catalog", catalog.path)[0] == 0

    code, out, _ = cli("funnel", "--json", "--catalog", catalog.path)
    funnel = json.loads(out)
    assert funnel["images"] == 4
    assert {s["stage"]: s["seen"] for s in funnel["stages"]} == {"ingest": 4, "clean": 4,
                                                                 "dedup": 4}
    candidates = dedup_candidates(catalog, "clean-1-x4", "phash-1").column("image_id")
    assert old_id not in candidates.to_pylist() and len(candidates) == 4
    # Even with a dedup pass of its own (from before the change), selection never takes it in.
    write_outcomes(catalog, pa.table({"image_id": [old_id], "stage": ["dedup"], "status": ["pass"],
                                      "reason": [None], "detail": [None]}), run_id=0)
    code, out, err = cli("select", "--stage", "quality", "--dry-run", "--json",
                         "--catalog", catalog.path)
    assert code == 0, err
    assert json.loads(out)["input"] == 4 and input_size(catalog, "quality") == 4


def test_every_skipped_file_is_counted_by_extension(cli, catalog, tmp_path):
    """The issue's case: `.avif` and `.svg` files were skipped by the extension filter and
    counted nowhere ("paths found 0", exit 0)."""
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "drawing.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (pool / "logo.SVG").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (pool / "notes.txt").write_text("not an image")
    (pool / "README").write_text("no extension")
    code, out, err = _ingest(cli, catalog, pool)
    assert code == 0, err
    assert "unsupported_extension" in out and ".svg 2" in out
    (counts,), = _rows(catalog, "SELECT counts FROM runs WHERE command = 'ingest'")
    assert json.loads(counts)["unsupported_extension"] == {".svg": 2, ".txt": 1, "": 1}


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF", "JXL"])
def test_avif_heif_and_jpeg_xl_are_ingested_cleaned_and_scored(cli, catalog, tmp_path, fmt):
    """With their Pillow plugins installed (extras `avif`, `heif`, `jxl`; Pillow >= 11.3
    decodes AVIF itself), these formats go through every stage like JPEGs."""
    from hfaid_core.image_open import register_plugins

    register_plugins()
    try:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, fmt)
    except (KeyError, OSError):
        pytest.skip(f"no {fmt} plugin installed here")
    pool = tmp_path / "pool"
    photo = Image.open(write_photo_pool(pool, 1, size=(320, 240))[0])
    photo.save(pool / f"photo.{fmt.lower()}", fmt, quality=90)
    (pool / "img_00000.jpg").unlink()
    assert _ingest(cli, catalog, pool)[0] == 0
    assert _rows(catalog, "SELECT format, width, height FROM images") == [(fmt, 320, 240)]
    config = tmp_path / "c.toml"
    config.write_text("[clean]\nmin_short_side = 1\nlaplacian_min = 0\nlaplacian_max = 1e9\n")
    assert cli("clean", "--workers", "1", "--config", config, "--catalog", catalog.path)[0] == 0
    assert _rows(catalog, "SELECT status FROM stage_outcomes WHERE stage = 'clean'") == [
        ("pass",)]
    code, _, err = cli("score", "--metrics", "brisque", "--stage-input", "clean", "--device",
                       "cpu", "--catalog", catalog.path)
    assert code == 0, err
    assert _rows(catalog, "SELECT count(*) FROM scores WHERE metric = 'brisque'") == [(1,)]
