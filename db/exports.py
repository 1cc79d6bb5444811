"""Exports: the images an export may take, their scores and provenance, and finished exports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from db.catalog import Catalog
from db.scores import latest_columns

_IDS = pa.schema([("image_id", pa.string())])


@dataclass
class ExportInputs:
    """Everything an export plan reads from the catalog, read in one connection."""

    candidates: pa.Table  # image_id, path, source, width, height, format, bytes
    scores: pa.Table  # image_id, metric, version, value (latest per version)
    runs: pa.Table  # image_id, run_id, command: runs that touched each candidate (not exports)
    folders: list[str]  # every folder holding an ingested path


def export_inputs(catalog: Catalog, stage: str | None, status: str | None) -> ExportInputs:
    """Candidates (latest `stage` outcome == `status`; every image when stage is None, ordered
    by image_id), their scores and contributing runs, and the catalog's image folders."""
    sql = (
        "SELECT i.image_id, ip.path, p.source, i.width, i.height, i.format, i.bytes "
        "FROM images i JOIN image_paths ip USING (image_id) JOIN paths p ON p.path = ip.path "
    )
    params: list = []
    if stage is not None:
        sql += "JOIN stage_outcomes o ON o.image_id = i.image_id AND o.stage = ? AND o.status = ? "
        params += [stage, status]
    sql += "ORDER BY i.image_id"
    with catalog.connect(read_only=True) as con:
        candidates = con.sql(sql, params=params).to_arrow_table()
        con.register("wanted", candidates.select(["image_id"]))
        scores = con.sql(
            "SELECT s.image_id, s.metric, s.version, arg_max(s.value, s.created_at) AS value "
            "FROM scores s JOIN wanted w USING (image_id) GROUP BY ALL "
            "ORDER BY s.image_id, s.metric, s.version"
        ).to_arrow_table()
        has_captions = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'captions'"
        ).fetchall()[0][0]
        captions = "UNION SELECT image_id, run_id FROM captions JOIN wanted USING (image_id) "
        runs = con.sql(
            "WITH touched AS (SELECT image_id, run_id FROM images JOIN wanted USING (image_id) "
            "UNION SELECT image_id, run_id FROM stage_outcomes JOIN wanted USING (image_id) "
            "WHERE stage <> 'export' "
            "UNION SELECT image_id, run_id FROM scores JOIN wanted USING (image_id) "
            f"{captions if has_captions else ''}) "
            "SELECT t.image_id, r.run_id, r.command FROM touched t JOIN runs r USING (run_id) "
            "ORDER BY t.image_id, r.run_id"
        ).to_arrow_table()
        folders = [r[0] for r in con.execute(
            "SELECT DISTINCT regexp_replace(path, '/[^/]*$', '') FROM paths ORDER BY 1"
        ).fetchall() if r[0]]
    return ExportInputs(candidates, scores, runs, folders)


def score_means(catalog: Catalog, image_ids: list[str]) -> list[dict[str, Any]]:
    """Per metric (latest value per image, NaN none): mean and count over the given images and
    over every scored image, for the datasheet's Table-3-style comparison."""
    ids = pa.table({"image_id": pa.array(image_ids, pa.string())}, schema=_IDS)
    with catalog.connect(read_only=True) as con:
        con.register("wanted", ids)
        column = latest_columns(con)
        # One scan of the wide table: four aggregates per metric column.
        aggregates = ", ".join(
            f"avg({c}) FILTER (WHERE chosen), count({c}) FILTER (WHERE chosen), "
            f"avg({c}), count({c})" for c in column.values())
        row = con.execute(
            f"SELECT {aggregates or 'NULL'} FROM (SELECT *, image_id IN "
            "(SELECT image_id FROM wanted) AS chosen FROM scores_latest)"
        ).fetchone()
    rows = [(m, *row[4 * i:4 * i + 4]) for i, m in enumerate(column)]
    return [{"metric": m, "export_mean": em, "export_n": en, "pool_mean": pm, "pool_n": pn}
            for m, em, en, pm, pn in rows]


def record_export(catalog: Catalog, run_id: int, export_id: str, out_dir: str, fmt: str,
                  options: dict[str, Any], counts: dict[str, Any], manifest_sha256: str,
                  items: pa.Table, outcomes: pa.Table) -> None:
    """Store a finished export, its items (image_id, key, shard) and the "export" stage outcomes
    (image_id, status, reason, detail) of every image it considered, in one transaction."""
    with catalog.transaction() as con:
        con.execute(
            "INSERT INTO exports (run_id, export_id, out_dir, format, options, counts, "
            "manifest_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [run_id, export_id, out_dir, fmt, json.dumps(options), json.dumps(counts),
             manifest_sha256],
        )
        con.register("incoming", items)
        con.execute(
            "INSERT INTO export_items (run_id, image_id, key, shard) "
            "SELECT ?, image_id, key, shard FROM incoming",
            [run_id],
        )
        con.unregister("incoming")
        con.register("decided", outcomes)
        con.execute(
            "DELETE FROM stage_outcomes o USING decided d "
            "WHERE o.image_id = d.image_id AND o.stage = 'export'"
        )
        con.execute(
            "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
            "SELECT image_id, 'export', status, reason, detail, ? FROM decided",
            [run_id],
        )
        con.unregister("decided")


def list_exports(catalog: Catalog) -> list[dict[str, Any]]:
    """Finished exports, newest first."""
    with catalog.connect(read_only=True) as con:
        cur = con.execute(
            "SELECT e.run_id, e.export_id, e.out_dir, e.format, e.counts, e.manifest_sha256, "
            "e.created_at, "
            "(SELECT count(*) FROM export_items i WHERE i.run_id = e.run_id) AS items "
            "FROM exports e ORDER BY e.run_id DESC"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
