"""Stage outcomes (pass / reject / error with a reason) and the funnel built from them."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from db.catalog import Catalog
from db.stages import live_only, stage_rank

OUTCOME_COLUMNS = ("image_id", "stage", "status", "reason", "detail")


def write_outcomes(catalog: Catalog, outcomes: pa.Table, run_id: int) -> int:
    """Replace outcomes from an in-memory table with OUTCOME_COLUMNS."""
    with catalog.transaction() as con:
        con.register("incoming", outcomes)
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT DISTINCT ON (image_id, stage) "
            "image_id, stage, status, reason, detail FROM incoming ORDER BY image_id, stage"
        )
        con.unregister("incoming")
        return _replace_from_batch(con, run_id)


def _replace_from_batch(con, run_id: int) -> int:
    con.execute(
        "DELETE FROM stage_outcomes o USING batch b "
        "WHERE o.image_id = b.image_id AND o.stage = b.stage"
    )
    con.execute(
        "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
        "SELECT image_id, stage, status, reason, detail, ? FROM batch",
        [run_id],
    )
    count = con.execute("SELECT count(*) FROM batch").fetchone()[0]
    con.execute("DROP TABLE batch")
    return count


def funnel(catalog: Catalog) -> dict[str, Any]:
    """Per stage: seen, passed, rejected, errors and counts per reason, in pipeline order."""
    with catalog.connect(read_only=True) as con:
        live = live_only(con)
        images = con.execute(f"SELECT count(*) FROM images WHERE true {live}").fetchone()[0]
        ingest = con.execute("SELECT count(*), count(image_id), count(error) FROM paths").fetchone()
        ingest_reasons = con.execute(
            "SELECT error, count(*) FROM paths WHERE error IS NOT NULL "
            "GROUP BY error ORDER BY 2 DESC"
        ).fetchall()
        rows = con.execute(
            "SELECT stage, status, coalesce(reason, ''), count(*) FROM stage_outcomes "
            f"WHERE true {live}GROUP BY ALL"
        ).fetchall()
    stages: dict[str, dict[str, Any]] = {}
    if ingest[0]:
        stages["ingest"] = {
            "stage": "ingest",
            "seen": ingest[0],
            "passed": ingest[1],
            "rejected": 0,
            "errors": ingest[2],
            "reasons": dict(ingest_reasons),
        }
    for stage, status, reason, count in rows:
        entry = stages.setdefault(
            stage,
            {"stage": stage, "seen": 0, "passed": 0, "rejected": 0, "errors": 0, "reasons": {}},
        )
        entry["seen"] += count
        key = {"pass": "passed", "reject": "rejected", "error": "errors"}.get(status)
        if key:
            entry[key] += count
        if status != "pass" and reason:
            entry["reasons"][reason] = entry["reasons"].get(reason, 0) + count
    ordered = sorted(stages.values(), key=lambda s: stage_rank(s["stage"]))
    for entry in ordered:
        entry["reasons"] = dict(sorted(entry["reasons"].items(), key=lambda kv: -kv[1]))
    return {"images": images, "stages": ordered}
