"""Ingest: hash file bytes into content ids and read image headers, on the shard runner."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from PIL import Image

from curation.runner import JobStats, ShardJob, run_job
from curation.sources import Candidate, expand_sources
from db.catalog import Catalog
from db.images import changed_paths, merge_ingest_results

# Header parsing must never trip PIL's bomb guard; the decode check applies the real limit.
Image.MAX_IMAGE_PIXELS = None

RESULT_SCHEMA = pa.schema(
    [
        ("path", pa.string()), ("source", pa.string()), ("size", pa.int64()),
        ("mtime", pa.float64()), ("image_id", pa.string()), ("format", pa.string()),
        ("width", pa.int32()), ("height", pa.int32()), ("mode", pa.string()),
        ("exif_orientation", pa.int16()), ("n_frames", pa.int32()),
        ("header_error", pa.string()), ("error", pa.string()), ("error_detail", pa.string()),
    ]
)
SCAN_SCHEMA = pa.schema(
    [("path", pa.string()), ("source", pa.string()), ("size", pa.int64()),
     ("mtime", pa.float64()), ("error", pa.string()), ("error_detail", pa.string())]
)


def scan(candidates: list[Candidate]) -> pa.Table:
    """stat() every candidate: size and mtime decide whether a re-run skips it."""
    rows = {name: [] for name in SCAN_SCHEMA.names}
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
        for name, value in zip(
            SCAN_SCHEMA.names, (c.path, c.source, size, mtime, error, detail), strict=True
        ):
            rows[name].append(value)
    return pa.table(rows, schema=SCAN_SCHEMA)


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
    """Reads each file once: sha256 of the bytes, then the image header from the same buffer."""

    def process(self, items: pa.Table) -> pa.Table:
        out = {name: [] for name in RESULT_SCHEMA.names}
        for row in items.to_pylist():
            record = dict.fromkeys(RESULT_SCHEMA.names)
            record.update(row)
            if row["error"] is None:
                record.update(read_file(row["path"]))
            for name in RESULT_SCHEMA.names:
                out[name].append(record[name])
        return pa.table(out, schema=RESULT_SCHEMA)


def read_file(path: str) -> dict:
    """Content hash plus header fields; a file that cannot be read gets error fields instead."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        error, detail = _os_error_reason(path, exc)
        return {"error": error, "error_detail": detail}
    record = {"image_id": hashlib.sha256(data).hexdigest(), "size": len(data)}
    record.update(read_header(data))
    return record


def read_header(data: bytes) -> dict:
    """Format, size, mode, EXIF orientation and frame count from the header (no pixel decode)."""
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
                "format": im.format, "width": im.width, "height": im.height, "mode": im.mode,
                "exif_orientation": int(orientation) if isinstance(orientation, int) else None,
                "n_frames": int(getattr(im, "n_frames", 1) or 1),
            }
    except Exception as exc:  # any decoder complaint becomes data for the decode check
        return {"header_error": f"{type(exc).__name__}: {exc}"[:500]}


def ingest(catalog: Catalog, sources: list[Path], extensions: list[str], path_column: str,
           run_id: int, workers: int, shard_size: int) -> tuple[JobStats, dict[str, int]]:
    """Scan sources, skip unchanged paths, hash the rest on the runner, merge into the catalog."""
    candidates = list(expand_sources(sources, extensions, path_column))
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
    )
    stats = run_job(job)
    return stats, {"candidates": len(candidates), "skipped_unchanged": len(candidates) - stats.items}
