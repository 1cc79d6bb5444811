"""Images and paths: what ingest has seen, what is new or changed, and merging ingest results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from db.catalog import Catalog
from db.outcomes import error_summary
from db.scores import refresh_latest_paths


def changed_paths(catalog: Catalog, scanned: pa.Table) -> pa.Table:
    """Rows of `scanned` (path, source, size, mtime) that are new or whose size/mtime changed."""
    with catalog.connect(read_only=True) as con:
        con.register("scanned", scanned)
        return con.sql(
            "SELECT s.* FROM scanned s LEFT JOIN paths p ON p.path = s.path "
            "WHERE p.path IS NULL OR p.size IS DISTINCT FROM s.size "
            "OR p.mtime IS DISTINCT FROM s.mtime ORDER BY s.path"
        ).to_arrow_table()


def merge_ingest_results(catalog: Catalog, result_files: list[Path], run_id: int) -> int:
    """Ingest result files -> images (new content only) and paths (upsert); returns rows merged."""
    if not result_files:
        return 0
    files = [str(f) for f in result_files]
    with catalog.transaction() as con:
        con.execute("CREATE TEMP TABLE batch AS SELECT * FROM read_parquet(?)", [files])
        con.execute(
            """
            INSERT INTO images (image_id, bytes, format, width, height, mode, exif_orientation,
                                n_frames, header_error, run_id)
            SELECT DISTINCT ON (image_id) image_id, size, format, width, height, mode,
                   exif_orientation, n_frames, header_error, ?
            FROM batch b
            WHERE image_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM images i WHERE i.image_id = b.image_id)
            ORDER BY image_id
            """,
            [run_id],
        )
        con.execute(
            "CREATE TEMP TABLE replaced AS SELECT DISTINCT p.image_id FROM paths p "
            "JOIN batch b USING (path) WHERE p.image_id IS NOT NULL"
        )
        con.execute("DELETE FROM paths WHERE path IN (SELECT path FROM batch)")
        con.execute(
            """
            INSERT INTO paths (path, image_id, source, size, mtime, error, error_detail, run_id)
            SELECT DISTINCT ON (path) path, image_id, source, size, mtime, error, error_detail, ?
            FROM batch ORDER BY path
            """,
            [run_id],
        )
        # Content that lost its last path is an orphan until some path holds it again.
        con.execute(
            "INSERT OR IGNORE INTO orphan_images SELECT image_id FROM replaced r "
            "WHERE NOT EXISTS (SELECT 1 FROM paths p WHERE p.image_id = r.image_id)"
        )
        con.execute(
            "DELETE FROM orphan_images WHERE image_id IN "
            "(SELECT image_id FROM batch WHERE image_id IS NOT NULL)"
        )
        refresh_latest_paths(con, "SELECT image_id FROM replaced UNION "
                                  "SELECT image_id FROM batch WHERE image_id IS NOT NULL")
        con.execute("DROP TABLE replaced")
        merged = con.execute("SELECT count(*) FROM batch").fetchone()[0]
        con.execute("DROP TABLE batch")
    return merged


def image_counts(catalog: Catalog) -> dict[str, int]:
    with catalog.connect(read_only=True) as con:
        images, paths, errors, duplicates = con.execute(
            "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM paths), "
            "(SELECT count(*) FROM paths WHERE error IS NOT NULL), "
            "(SELECT count(*) FROM ingest_outcomes WHERE reason = 'exact_duplicate')"
        ).fetchone()
    return {
        "images": images,
        "paths": paths,
        "path_errors": errors,
        "exact_duplicates": duplicates,  # paths holding the same bytes as a kept path
    }


def passing_join(stage: str | None) -> tuple[str, list]:
    """A JOIN (and its parameters) keeping `images i` rows that passed `stage`; none for None."""
    if stage is None:
        return "", []
    return (
        "JOIN stage_outcomes o ON o.image_id = i.image_id AND o.stage = ? AND o.status = 'pass' ",
        [stage],
    )


def images_passing(catalog: Catalog, stage: str | None) -> pa.Table:
    """image_id, path, width, height, format of images that passed `stage` (all if None)."""
    sql = (
        "SELECT i.image_id, ip.path, i.width, i.height, i.format, i.exif_orientation "
        "FROM images i JOIN image_paths ip USING (image_id) "
    )
    join, params = passing_join(stage)
    sql += join
    sql += "ORDER BY i.image_id"
    with catalog.connect(read_only=True) as con:
        return con.sql(sql, params=params).to_arrow_table()


def ingest_errors(catalog: Catalog, run_id: int, top: int = 3) -> dict[str, Any]:
    """Paths `run_id` read: how many, how many could not be read, the top reasons."""
    with catalog.connect(read_only=True) as con:
        seen, errors = con.execute(
            "SELECT count(*), count(error) FROM paths WHERE run_id = ?", [run_id]
        ).fetchone()
        reasons = con.execute(
            "SELECT error, count(*), any_value(path || ': ' || coalesce(error_detail, error)) "
            "FROM paths WHERE run_id = ? AND error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 "
            "LIMIT ?",
            [run_id, top],
        ).fetchall()
    return error_summary(seen, errors, reasons)
