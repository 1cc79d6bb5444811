"""Scoring job rows: pending (image, missing metrics), merging results into scores + outcomes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from db.catalog import Catalog
from db.images import passing_join
from db.scores import insert_scores

STAGE = "score"
RESULT_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("version", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)


def pending_scores(
    catalog: Catalog, stage: str | None, metric_versions: dict[str, str], cell: int = 1
) -> pa.Table:
    """image_id, path, width, height, exif_orientation, missing (metrics lacking that version),
    with images of one shape next to each other, and shapes of one `cell` (sides rounded down
    to its multiples: NIQE batches a 96-px cell, `ScorerSpec.batch_cell`) next to each other.

    Most full-resolution metrics batch only equal shapes, and a shard batches only within
    itself: in content-hash order a shard of a pool with many sizes holds a few images of each
    and its batches stay near 1 (a GPU scores 4-8x fewer images/s at batch 1 than at 16).
    Shapes come in hashed order, not by size, so that progress and its ETA do not drift from
    small to large images. Orientations 5-8 swap width and height, as decoding does."""
    cell = max(1, int(cell))
    wanted = pa.table({"metric": list(metric_versions), "version": list(metric_versions.values())})
    shape_w = "CASE WHEN i.exif_orientation IN (5, 6, 7, 8) THEN i.height ELSE i.width END"
    shape_h = "CASE WHEN i.exif_orientation IN (5, 6, 7, 8) THEN i.width ELSE i.height END"
    sql = (
        "SELECT * EXCLUDE (shape_w, shape_h) FROM ("
        "SELECT i.image_id, ip.path, i.width, i.height, i.exif_orientation, "
        f"list(w.metric ORDER BY w.metric) AS missing, {shape_w} AS shape_w, {shape_h} AS shape_h "
        "FROM images i JOIN image_paths ip USING (image_id) CROSS JOIN wanted w "
    )
    join, params = passing_join(stage)
    sql += join
    sql += (
        "WHERE NOT EXISTS (SELECT 1 FROM scores s WHERE s.image_id = i.image_id "
        "AND s.metric = w.metric AND s.version = w.version) "
        "GROUP BY ALL) "
        f"ORDER BY hash(shape_w // {cell}, shape_h // {cell}), shape_w // {cell}, "
        f"shape_h // {cell}, shape_w, shape_h, image_id"
    )
    with catalog.connect(read_only=True) as con:
        con.register("wanted", wanted)
        return con.sql(sql, params=params).to_arrow_table()


def count_stage_input(catalog: Catalog, stage: str | None) -> int:
    with catalog.connect(read_only=True) as con:
        if stage is None:
            return con.execute("SELECT count(*) FROM image_paths").fetchone()[0]
        return con.execute(
            "SELECT count(*) FROM stage_outcomes WHERE stage = ? AND status = 'pass'", [stage]
        ).fetchone()[0]


def merge_score_results(catalog: Catalog, result_files: list[Path], run_id: int) -> int:
    """Scores (new (image, metric, version) only) and one 'score' outcome per image; idempotent."""
    if not result_files:
        return 0
    with catalog.transaction() as con:
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT * FROM read_parquet(?, union_by_name = true)",
            [[str(f) for f in result_files]],
        )
        added = insert_scores(
            con, "SELECT image_id, metric, value, version FROM batch "
            "WHERE status = 'ok' AND value IS NOT NULL", run_id)
        con.execute(
            """
            CREATE TEMP TABLE outcome AS
            SELECT image_id, ? AS stage,
                   CASE WHEN bool_or(status = 'error') THEN 'error' ELSE 'pass' END AS status,
                   min(reason) FILTER (WHERE status = 'error') AS reason,
                   CASE WHEN bool_or(status = 'error')
                        THEN string_agg(metric || ': ' || coalesce(detail, reason), '; '
                                        ORDER BY metric) FILTER (WHERE status = 'error')
                        ELSE 'scored ' || string_agg(DISTINCT metric, ',' ORDER BY metric) END
                       AS detail
            FROM batch GROUP BY image_id
            """,
            [STAGE],
        )
        con.execute(
            "DELETE FROM stage_outcomes o USING outcome b "
            "WHERE o.image_id = b.image_id AND o.stage = b.stage"
        )
        con.execute(
            "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
            "SELECT image_id, stage, status, reason, detail, ? FROM outcome",
            [run_id],
        )
        con.execute("DROP TABLE outcome")
        con.execute("DROP TABLE batch")
    return added


def score_counts(catalog: Catalog, metric_versions: dict[str, str]) -> dict[str, int]:
    """Rows per metric at the given versions."""
    wanted = pa.table({"metric": list(metric_versions), "version": list(metric_versions.values())})
    with catalog.connect(read_only=True) as con:
        con.register("wanted", wanted)
        rows = con.execute(
            "SELECT w.metric, count(s.image_id) FROM wanted w LEFT JOIN scores s "
            "ON s.metric = w.metric AND s.version = w.version GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return dict(rows)
