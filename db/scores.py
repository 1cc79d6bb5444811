"""Long-format scores: merging result files without duplicates, pending work, wide exports."""

from __future__ import annotations

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


def latest_scores_wide(catalog: Catalog) -> pa.Table:
    """One row per scored image: image_id, path, and one column per metric (latest version)."""
    with catalog.connect(read_only=True) as con:
        metrics = [
            r[0] for r in con.execute("SELECT DISTINCT metric FROM scores ORDER BY 1").fetchall()
        ]
        if not metrics:
            return con.sql("SELECT image_id, path FROM image_paths WHERE false").to_arrow_table()
        columns = ", ".join(
            f"max(value) FILTER (WHERE metric = '{m.replace(chr(39), chr(39) * 2)}') "
            f'AS "{m.replace(chr(34), chr(34) * 2)}"'
            for m in metrics
        )
        return con.sql(
            f"""
            WITH latest AS (
                SELECT image_id, metric, arg_max(value, created_at) AS value
                FROM scores GROUP BY image_id, metric
            )
            SELECT l.image_id, ip.path, {columns}
            FROM latest l LEFT JOIN image_paths ip USING (image_id)
            GROUP BY l.image_id, ip.path ORDER BY l.image_id
            """
        ).to_arrow_table()
