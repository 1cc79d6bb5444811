"""Long-format scores: merging result files without duplicates, pending work, wide exports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from db.catalog import Catalog


def write_scores(catalog: Catalog, rows: pa.Table, run_id: int) -> int:
    """Insert scores from an in-memory table (image_id, metric, value, version), skipping dupes."""
    with catalog.transaction() as con:
        con.register("incoming", rows)
        added = con.execute(
            "INSERT INTO scores (image_id, metric, value, version, run_id) "
            "SELECT DISTINCT ON (b.image_id, b.metric, b.version) "
            "b.image_id, b.metric, b.value, b.version, ? FROM incoming b "
            "WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.image_id = b.image_id "
            "AND s.metric = b.metric AND s.version = b.version)",
            [run_id],
        ).fetchone()[0]
        con.unregister("incoming")
    return added


# DuckDB's memory for the wide export: its aggregate and sort spill to disk (beside the
# catalog) beyond this, so a 10M-image catalog exports in the memory of a 10k one.
EXPORT_MEMORY_MB = 640
EXPORT_BATCH_ROWS = 65_536


@contextmanager
def latest_scores_wide(
    catalog: Catalog, batch_rows: int = EXPORT_BATCH_ROWS
) -> Iterator[pa.RecordBatchReader]:
    """One row per scored image that still has a path: image_id, path, and one column per
    metric (its latest value, whatever the version), ordered by image_id, as a stream of
    record batches: memory stays bounded at any catalog size."""
    with catalog.connect(read_only=True) as con:
        con.execute(f"SET memory_limit = '{EXPORT_MEMORY_MB}MB'")
        versions = con.execute(
            "SELECT metric, count(DISTINCT version) > 1 FROM scores GROUP BY 1 ORDER BY 1"
        ).fetchall()
        metrics = [m for m, _ in versions]
        # One aggregate over the long table straight into the wide row (a pivot per image).
        # The latest value of a metric is its arg_max over created_at; with one version (the
        # usual case) an image has one value per metric, and max() keeps a third of the
        # state: 1.6x less CPU at 1M images, where the aggregate spills to disk.
        columns = "".join(
            f", {'arg_max(value, created_at)' if several else 'max(value)'} "
            f"FILTER (WHERE metric = {_literal(m)}) AS {_name(m)}"
            for m, several in versions
        )
        yield con.sql(
            f"""
            WITH wide AS (SELECT image_id{columns} FROM scores GROUP BY image_id),
            paths AS (SELECT image_id, min(path) AS path FROM paths
                      WHERE image_id IS NOT NULL GROUP BY image_id)
            SELECT w.image_id, p.path{"".join(f", w.{_name(m)}" for m in metrics)}
            FROM wide w JOIN paths p USING (image_id) ORDER BY w.image_id
            """
        ).to_arrow_reader(batch_rows)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _name(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
