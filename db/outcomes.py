"""Stage outcomes (pass / reject / error with a reason) and the funnel built from them."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from db.catalog import Catalog
from db.stages import live_only, stage_rank

OUTCOME_COLUMNS = ("image_id", "stage", "status", "reason", "detail")
# The detail of a selection pass when none of the stage's rules could apply (nothing scored):
# the funnel shows such a stage as "not run", never as a filter every image passed.
NO_RULE_APPLIED = "no rule applied"


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
        # Per path: read errors, exact (byte-identical) duplicates, passes (0010's view).
        ingest_rows = con.execute(
            "SELECT 'ingest', status, coalesce(reason, ''), count(*) FROM ingest_outcomes "
            "GROUP BY ALL"
        ).fetchall()
        rows = con.execute(
            "SELECT stage, status, coalesce(reason, ''), count(*) FROM stage_outcomes "
            f"WHERE true {live}GROUP BY ALL"
        ).fetchall()
        unfiltered = dict(
            con.execute(
                "SELECT stage, any_value(detail) FROM stage_outcomes GROUP BY stage "
                "HAVING bool_and(status = 'pass' AND coalesce(starts_with(detail, ?), false))",
                [NO_RULE_APPLIED],
            ).fetchall()
        )
    stages: dict[str, dict[str, Any]] = {}
    rows = ingest_rows + rows
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
        detail = unfiltered.get(entry["stage"])
        if detail is not None:  # every image went through unfiltered: not a stage that passed
            why = detail[len(NO_RULE_APPLIED):].strip(" ()") or "no rule applied"
            entry.update(not_run=why, passed_through=entry["passed"], passed=0)
    return {"images": images, "stages": ordered}


def run_errors(catalog: Catalog, stage: str, run_id: int, top: int = 3,
               failure_reasons: tuple[str, ...] = ()) -> dict[str, Any]:
    """Outcomes `run_id` wrote for `stage`: how many, how many errors (status error, or one of
    `failure_reasons`), the top error reasons with one example detail each."""
    failed = "(status = 'error' OR list_contains(?::VARCHAR[], reason))"
    reasons_param = list(failure_reasons)
    with catalog.connect(read_only=True) as con:
        seen, errors = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {failed}) FROM stage_outcomes "
            "WHERE stage = ? AND run_id = ?",
            [reasons_param, stage, run_id],
        ).fetchone()
        reasons = con.execute(
            "SELECT coalesce(reason, 'unknown'), count(*), any_value(detail) FROM stage_outcomes "
            f"WHERE stage = ? AND run_id = ? AND {failed} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
            [stage, run_id, reasons_param, top],
        ).fetchall()
    return error_summary(seen, errors, reasons)


def error_summary(seen: int, errors: int, reasons: list[tuple[str, int, str | None]]
                  ) -> dict[str, Any]:
    """The errors part of a per-image job's summary, in one shape for every job."""
    return {
        "seen": seen,
        "errors": errors,
        "top_reasons": {r: n for r, n, _ in reasons},
        "examples": {r: d for r, _, d in reasons if d},
    }
