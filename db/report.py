"""Read-only data for the funnel report: one row per scored image with metrics, source, stages."""

from __future__ import annotations

import numpy as np

from db.catalog import Catalog
from db.scores import latest_columns, wanted_columns
from db.sqltext import sql_literal

# Selection stages whose pass flags the report needs, plus the human verdict.
FLAG_STAGES = ("quality", "aesthetic", "review_queue")


def report_frame(catalog: Catalog, metrics: list[str], only_reviewed: bool = False
                 ) -> dict[str, np.ndarray]:
    """Columns image_id, source, one float per metric (NaN = none), passed_<stage>
    booleans and `human` (1 accepted, 0 rejected, -1 not reviewed) as NumPy arrays."""
    with catalog.connect(read_only=True) as con:
        con.execute("SET enable_progress_bar = false")
        column = latest_columns(con)
        cols = wanted_columns(column, metrics)
        any_wanted = " OR ".join(f"{column[m]} IS NOT NULL" for m in metrics if m in column)
        flags = ", ".join(
            f"coalesce(bool_or(stage = {sql_literal(s)} AND status = 'pass'), false) AS passed_{s}"
            for s in FLAG_STAGES
        )
        reviewed = "WHERE o.human >= 0" if only_reviewed else ""
        # Verdicts are few: match them first instead of aggregating every score.
        narrow = ("SEMI JOIN (SELECT image_id FROM stage_outcomes WHERE stage = 'review') v "
                  "USING (image_id)" if only_reviewed else "")
        cur = con.execute(
            f"""
            WITH w AS (
                SELECT image_id, {cols} FROM scores_latest {narrow} WHERE {any_wanted or 'false'}
            ),
            o AS (
                SELECT image_id, {flags},
                       coalesce(max(CASE WHEN stage = 'review' THEN
                           CASE status WHEN 'pass' THEN 1 WHEN 'reject' THEN 0 END END), -1)
                           AS human
                FROM stage_outcomes
                WHERE stage IN ({', '.join(sql_literal(s) for s in (*FLAG_STAGES, 'review'))})
                GROUP BY image_id
            )
            SELECT w.*, coalesce(p.source, '?') AS source,
                   {', '.join(f'coalesce(o.passed_{s}, false) AS passed_{s}' for s in FLAG_STAGES)},
                   coalesce(o.human, -1) AS human
            FROM w LEFT JOIN (SELECT image_id, min(source) AS source FROM paths
                              WHERE image_id IS NOT NULL GROUP BY image_id) p
                   ON p.image_id = w.image_id
            LEFT JOIN o ON o.image_id = w.image_id
            {reviewed}
            """
        )
        data = cur.fetchnumpy()
    out: dict[str, np.ndarray] = {}
    for key, values in data.items():
        arr = np.asarray(values.filled(np.nan) if np.ma.isMaskedArray(values) and
                         values.dtype.kind == "f" else values)
        if key.startswith("m") and key[1:].isdigit():
            out[metrics[int(key[1:])]] = arr.astype(float)
        else:
            out[key] = arr
    return out


def funnel_counts(catalog: Catalog) -> list[tuple[str, int, int]]:
    """(stage, seen, passed) per stage with outcomes, plus ingest as images registered."""
    from db.outcomes import funnel

    result = funnel(catalog)
    return [(s["stage"], s["seen"], s["passed"]) for s in result["stages"]]


def paths_for(catalog: Catalog, image_ids: list[str]) -> dict[str, str]:
    """One readable path per image id."""
    with catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT image_id, path FROM image_paths WHERE image_id IN (SELECT unnest(?))",
            [list(image_ids)],
        ).fetchall()
    return dict(rows)
