"""Ingest: hash file bytes into content ids and read image headers, on the shard runner."""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from blake3 import blake3
from PIL import Image

from curation.ingest.sources import Candidate, expand_sources
from db.catalog import Catalog
from db.images import changed_paths, merge_ingest_results
from hfaid_core.runner import JobStats, ShardJob, run_job

RESULT_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("source", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("image_id", pa.string()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("mode", pa.string()),
        ("exif_orientation", pa.int16()),
        ("n_frames", pa.int32()),
        ("header_error", pa.string()),
        ("error", pa.string()),
        ("error_detail", pa.string()),
    ]
)
SCAN_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("source", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("error", pa.string()),
        ("error_detail", pa.string()),
    ]
)
SCAN_NAMES = tuple(SCAN_SCHEMA.names)
RESULT_NAMES = tuple(RESULT_SCHEMA.names)


def scan(candidates: list[Candidate]) -> pa.Table:
    """stat() every candidate: size and mtime decide whether a re-run skips it."""
    columns: dict[str, list] = {name: [] for name in SCAN_NAMES}
    for c in candidates:
        size = mtime = None
        error, detail = c.error, c.error_detail
        if error is None:
            try:
                st = os.stat(c.path)
                size, mtime = st.st_size, st.st_mtime
                if not stat.S_ISREG(st.st_mode):
                    error, detail = "not_a_file", "not a regular file"
            except OSError as exc:
                error, detail = _os_error_reason(c.path, exc)
        columns["path"].append(c.path)
        columns["source"].append(c.source)
        columns["size"].append(size)
        columns["mtime"].append(mtime)
        columns["error"].append(error)
        columns["error_detail"].append(detail)
    return pa.table(columns, schema=SCAN_SCHEMA)


def _os_error_reason(path: str, exc: OSError) -> tuple[str, str]:
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return "broken_symlink", f"symlink to {os.readlink(path)} points nowhere"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission_denied", exc.strerror or "permission denied"
    if exc.errno == errno.ENOENT:
        return "missing_file", "file does not exist"
    if exc.errno == errno.EISDIR:
        return "not_a_file", "is a directory"
    return "unreadable", f"{exc.strerror or exc}"


@dataclass
class IngestWorker:
    """Reads each file once: content hash of the bytes, then the header from the same buffer."""

    def process(self, items: pa.Table) -> pa.Table:
        columns: dict[str, list] = {name: [] for name in RESULT_NAMES}
        for row in items.to_pylist():
            record = dict(row)
            if row["error"] is None:
                record.update(read_file(row["path"], row["size"], row["mtime"]))
            for name in RESULT_NAMES:
                columns[name].append(record.get(name))
        return pa.table(columns, schema=RESULT_SCHEMA)


CHANGING_RETRY_S = 0.5  # a file that changed while read is read once more after this pause


def read_file(path: str, size: int | None = None, mtime: float | None = None) -> dict:
    """Content hash plus header fields, of bytes that did not change while they were read:
    the file's size and mtime after hashing must equal those before (the scan's, when given)
    and the bytes read must be as many as the size. Otherwise it is read once more after a
    pause, against the size and mtime it had then; changed again, it is `file_changing`, with
    no size, so the next ingest reads it again. A file that cannot be read gets error fields."""
    for attempt in range(2):
        try:
            if size is None:
                before = os.stat(path)
                size, mtime = before.st_size, before.st_mtime
            with open(path, "rb") as fh:
                data = fh.read()
            after = os.stat(path)
        except OSError as exc:
            error, detail = _os_error_reason(path, exc)
            return {"error": error, "error_detail": detail}
        if len(data) == after.st_size == size and after.st_mtime == mtime:
            record = {"image_id": content_id(data), "size": len(data), "mtime": after.st_mtime}
            record.update(read_header(data))
            return record
        # Once more after a pause, against what it was now: a file still being written has
        # changed again by then, even if it looks still while it is read.
        size, mtime = after.st_size, after.st_mtime
        if not attempt:
            time.sleep(CHANGING_RETRY_S)
    return {
        "error": "file_changing",
        "error_detail": f"size or mtime changed while it was read (twice; last read {len(data):,} "
        f"of {after.st_size:,} bytes): re-run ingest once it is written",
        "size": None,
        "mtime": None,
    }


def content_id(data: bytes) -> str:
    """The image id: BLAKE3-256 of the file bytes (hex). BLAKE3 is a cryptographic hash that
    runs several times faster than SHA-256, which keeps ingest at the speed of reading."""
    return blake3(data, max_threads=1).hexdigest()


def read_header(data: bytes) -> dict:
    """Format, size, mode, EXIF orientation and frame count from the header (no pixel decode)."""
    # Pillow's bomb guard off (a bomb's header must still read; the decode applies the
    # configured limit) and the HEIF/AVIF/JPEG XL plugins on: on first use, not at CLI start.
    from hfaid_core import image_open  # noqa: F401

    if not data:
        return {"header_error": "empty file"}
    try:
        with Image.open(io.BytesIO(data)) as im:
            orientation = None
            try:
                orientation = im.getexif().get(0x0112)
            except Exception:  # a broken EXIF block is not a broken image
                orientation = None
            return {
                "format": im.format,
                "width": im.width,
                "height": im.height,
                "mode": im.mode,
                "exif_orientation": int(orientation) if isinstance(orientation, int) else None,
                "n_frames": int(getattr(im, "n_frames", 1) or 1),
            }
    except Exception as exc:  # any decoder complaint becomes data for the decode check
        return {"header_error": f"{type(exc).__name__}: {exc}"[:500]}


def ingest(
    catalog: Catalog,
    sources: list[Path],
    extensions: list[str],
    path_column: str,
    run_id: int,
    workers: int,
    shard_size: int,
) -> tuple[JobStats, dict[str, int]]:
    """Scan sources, skip unchanged paths, hash the rest on the runner, merge into the catalog."""
    skipped: Counter[str] = Counter()
    candidates = list(expand_sources(sources, extensions, path_column, skipped))
    scanned = scan(candidates)
    job = ShardJob(
        name="ingest",
        work_dir=catalog.work_dir,
        pending=lambda: changed_paths(catalog, scanned),
        worker_factory=IngestWorker,
        merge=lambda files: merge_ingest_results(catalog, files, run_id),
        shard_size=shard_size,
        workers=workers,
        description="ingest",
        run_id=run_id,
        start_method="fork",  # pure Python + PIL workers: no torch, so fork is safe and instant
    )
    stats = run_job(job)
    return stats, {
        "candidates": len(candidates),
        "skipped_unchanged": len(candidates) - stats.items,
        # every file passed over in the folders, by extension (reason unsupported_extension)
        "unsupported_extension": dict(skipped.most_common()),
    }
