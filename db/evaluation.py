"""Evaluation records: test sets, methods' SR outputs, their scores, and the table's rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from db.catalog import Catalog

REFERENCE_SEP = "|"  # job keys are "<output_id>|<reference_id>" ('' for no-reference metrics)
_WANTED = pa.schema([("metric", pa.string()), ("version", pa.string()),
                     ("fullref", pa.bool_())])


def record_set(catalog: Catalog, set_id: str, folder: str, protocol: dict[str, Any],
               images: pa.Table, run_id: int | None) -> None:
    """The set and its images (name, hr_id, lr_id, hr_path, source_path, source_id); a set
    met again (same content, maybe in a moved folder) keeps its row and gets the new paths."""
    with catalog.transaction() as con:
        if con.execute("SELECT 1 FROM eval_sets WHERE set_id = ?", [set_id]).fetchall():
            con.execute("UPDATE eval_sets SET folder = ? WHERE set_id = ?", [folder, set_id])
        else:
            con.execute("INSERT INTO eval_sets (set_id, folder, protocol, images, run_id) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [set_id, folder, json.dumps(protocol, sort_keys=True), images.num_rows,
                         run_id])
        con.execute("DELETE FROM eval_images WHERE set_id = ?", [set_id])
        con.register("incoming", images)
        con.execute("INSERT INTO eval_images (set_id, name, hr_id, lr_id, hr_path, source_path, "
                    "source_id) SELECT ?, name, hr_id, lr_id, hr_path, source_path, source_id "
                    "FROM incoming", [set_id])
        con.unregister("incoming")


def set_table_layout(catalog: Catalog, set_id: str, metrics: list[str],
                     notes: dict[str, str], shave: int) -> None:
    """The metrics the latest run asked for (row order), why some rows are empty, and the
    PSNR/SSIM border shave it used."""
    layout = {"metrics": metrics, "notes": notes, "shave": shave}
    with catalog.connect() as con:
        con.execute("UPDATE eval_sets SET layout = ? WHERE set_id = ?",
                    [json.dumps(layout), set_id])


def record_outputs(catalog: Catalog, set_id: str, method: str, folder: str, kind: str,
                   outputs: pa.Table, run_id: int | None) -> None:
    """A method's folder and the file now standing for each image (name, output_id, path,
    width, height, status), replacing what an earlier run recorded for that method."""
    with catalog.transaction() as con:
        position = con.execute(
            "SELECT coalesce((SELECT position FROM eval_methods WHERE set_id = ? AND method = ?),"
            " (SELECT coalesce(max(position) + 1, 0) FROM eval_methods WHERE set_id = ?))",
            [set_id, method, set_id]).fetchone()[0]
        con.execute("DELETE FROM eval_methods WHERE set_id = ? AND method = ?", [set_id, method])
        con.execute("INSERT INTO eval_methods VALUES (?, ?, ?, ?, ?, ?)",
                    [set_id, method, folder, kind, position, run_id])
        con.execute("DELETE FROM eval_outputs WHERE set_id = ? AND method = ?", [set_id, method])
        con.register("incoming", outputs)
        con.execute("INSERT INTO eval_outputs SELECT ?, ?, name, output_id, path, width, height, "
                    "status, ? FROM incoming", [set_id, method, run_id])
        con.unregister("incoming")


def drop_method(catalog: Catalog, set_id: str, method: str) -> bool:
    """Forget a method's column (its scores stay, keyed by file content)."""
    with catalog.transaction() as con:
        found = con.execute("SELECT count(*) FROM eval_methods WHERE set_id = ? AND method = ?",
                            [set_id, method]).fetchone()[0]
        con.execute("DELETE FROM eval_methods WHERE set_id = ? AND method = ?", [set_id, method])
        con.execute("DELETE FROM eval_outputs WHERE set_id = ? AND method = ?", [set_id, method])
    return bool(found)


def pending_pairs(catalog: Catalog, set_id: str, methods: list[str],
                  wanted: dict[str, tuple[str, bool]]) -> pa.Table:
    """Work for the scoring job: one row per distinct (SR file, HR file) of these methods that
    lacks an ok score for a wanted metric@version. Columns: image_id (the job key), path,
    ref_path, width, height, exif_orientation, missing (metric names)."""
    table = _wanted_table(wanted)
    with catalog.connect(read_only=True) as con:
        con.register("wanted", table)
        con.register("chosen", pa.table({"method": pa.array(methods, pa.string())}))
        return con.sql(
            "SELECT o.output_id || '|' || i.hr_id AS image_id, any_value(o.path) AS path, "
            "any_value(i.hr_path) AS ref_path, any_value(o.width) AS width, "
            "any_value(o.height) AS height, NULL::BIGINT AS exif_orientation, "
            "list(DISTINCT w.metric ORDER BY w.metric) AS missing "
            "FROM eval_outputs o JOIN chosen USING (method) "
            "JOIN eval_images i ON i.set_id = o.set_id AND i.name = o.name "
            "CROSS JOIN wanted w "
            "WHERE o.set_id = ? AND o.status = 'ok' AND NOT EXISTS ("
            "  SELECT 1 FROM eval_scores s WHERE s.output_id = o.output_id "
            "  AND s.reference_id = CASE WHEN w.fullref THEN i.hr_id ELSE '' END "
            "  AND s.metric = w.metric AND s.version = w.version AND s.status = 'ok') "
            "GROUP BY o.output_id, i.hr_id ORDER BY any_value(o.height), any_value(o.width), 1",
            params=[set_id],
        ).to_arrow_table()


def merge_eval_results(catalog: Catalog, result_files: list[Path], run_id: int | None) -> int:
    """Result rows (job key, metric, value, version, status, reason, detail) into eval_scores:
    new keys inserted, an error replaced by a later result, an ok score kept; idempotent."""
    if not result_files:
        return 0
    with catalog.transaction() as con:
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT DISTINCT ON (output_id, reference_id, metric, "
            "version) * FROM (SELECT split_part(image_id, '|', 1) AS output_id, "
            "split_part(image_id, '|', 2) AS reference_id, metric, version, value, status, "
            "reason, detail FROM read_parquet(?, union_by_name = true)) "
            "ORDER BY output_id, reference_id, metric, version, status DESC",
            [[str(f) for f in result_files]])
        con.execute(
            "DELETE FROM eval_scores s USING batch b WHERE s.status = 'error' "
            "AND s.output_id = b.output_id AND s.reference_id = b.reference_id "
            "AND s.metric = b.metric AND s.version = b.version")
        added = con.execute(
            "INSERT INTO eval_scores (output_id, reference_id, metric, version, value, status, "
            "reason, detail, run_id) SELECT b.output_id, b.reference_id, b.metric, b.version, "
            "b.value, b.status, b.reason, b.detail, ? FROM batch b WHERE NOT EXISTS ("
            "SELECT 1 FROM eval_scores s WHERE s.output_id = b.output_id "
            "AND s.reference_id = b.reference_id AND s.metric = b.metric "
            "AND s.version = b.version)", [run_id]).fetchone()[0]
        con.execute("DROP TABLE batch")
    return added


def per_image_scores(catalog: Catalog, set_id: str,
                     wanted: dict[str, tuple[str, bool]] | None = None) -> pa.Table:
    """One row per (method, image, metric): value (NULL unless ok), version, status (ok, error,
    missing output, or NULL when not scored), reason, detail. With `wanted` (metric ->
    (version, full-reference)) exactly those versions; else each metric's newest score."""
    with catalog.connect(read_only=True) as con:
        if wanted is None:
            found = con.execute("SELECT layout FROM eval_sets WHERE set_id = ?",
                                [set_id]).fetchall()
            layout = found[0][0] if found else None
            metrics = json.loads(layout)["metrics"] if layout else []
            con.register("names", pa.table({"metric": pa.array(metrics, pa.string())}))
            version_match = "TRUE"
        else:
            con.register("names", _wanted_table(wanted))
            version_match = "s.version = w.version"
        return con.sql(
            "WITH cells AS (SELECT m.position, o.method, o.name, o.status AS output_status, "
            "o.output_id, o.path, i.hr_id, w.metric FROM eval_outputs o "
            "JOIN eval_methods m ON m.set_id = o.set_id AND m.method = o.method "
            "JOIN eval_images i ON i.set_id = o.set_id AND i.name = o.name "
            "CROSS JOIN names w WHERE o.set_id = ?), "
            "found AS (SELECT c.method, c.name, c.metric, "
            "arg_max(s.value, (s.status = 'ok', s.created_at)) AS value, "
            "arg_max(s.version, (s.status = 'ok', s.created_at)) AS version, "
            "arg_max(s.status, (s.status = 'ok', s.created_at)) AS status, "
            "arg_max(s.reason, (s.status = 'ok', s.created_at)) AS reason, "
            "arg_max(s.detail, (s.status = 'ok', s.created_at)) AS detail "
            "FROM cells c JOIN names w USING (metric) JOIN eval_scores s "
            "ON s.output_id = c.output_id AND s.metric = c.metric "
            f"AND s.reference_id IN (c.hr_id, '') AND {version_match} GROUP BY ALL) "
            "SELECT c.method, c.name, c.metric, c.path, "
            "CASE WHEN f.status = 'ok' THEN f.value END AS value, f.version, "
            "CASE WHEN c.output_status = 'missing' THEN 'missing' ELSE f.status END AS status, "
            "CASE WHEN c.output_status = 'missing' THEN 'no_output' ELSE f.reason END AS reason,"
            " f.detail FROM cells c LEFT JOIN found f USING (method, name, metric) "
            "ORDER BY c.position, c.name, c.metric",
            params=[set_id],
        ).to_arrow_table()


def table_layout(catalog: Catalog, set_id: str) -> dict[str, Any]:
    """The set's folder, protocol, image count, metrics (row order), notes, shave, methods."""
    with catalog.connect(read_only=True) as con:
        found = con.execute("SELECT folder, protocol, images, layout FROM eval_sets "
                            "WHERE set_id = ?", [set_id]).fetchall()
        methods = con.execute("SELECT method, kind, folder FROM eval_methods WHERE set_id = ? "
                              "ORDER BY position", [set_id]).fetchall()
    if not found:
        return {}
    row = found[0]
    layout = json.loads(row[3]) if row[3] else {}
    return {"set_id": set_id, "folder": row[0], "protocol": json.loads(row[1]),
            "images": row[2], "metrics": layout.get("metrics", []),
            "notes": layout.get("notes", {}), "shave": layout.get("shave", 0),
            "methods": [{"method": m, "kind": k, "folder": f} for m, k, f in methods]}


def evaluated_sets(catalog: Catalog) -> list[str]:
    """Sets with at least one method, newest first (an older catalog has none)."""
    with catalog.connect(read_only=True) as con:
        exists = con.execute("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_name = 'eval_sets'").fetchone()[0]
        if not exists:
            return []
        return [r[0] for r in con.execute(
            "SELECT s.set_id FROM eval_sets s WHERE EXISTS (SELECT 1 FROM eval_methods m "
            "WHERE m.set_id = s.set_id) ORDER BY s.created_at DESC, s.set_id").fetchall()]


def training_overlap(catalog: Catalog, source_ids: list[str]) -> list[dict[str, Any]]:
    """Test sources that are pool images: which of them an export took for training."""
    with catalog.connect(read_only=True) as con:
        con.register("ids", pa.table({"image_id": pa.array(source_ids, pa.string())}))
        rows = con.execute(
            "SELECT ids.image_id, list(DISTINCT e.run_id ORDER BY e.run_id) FILTER "
            "(WHERE e.run_id IS NOT NULL) FROM ids JOIN images USING (image_id) "
            "LEFT JOIN export_items e USING (image_id) GROUP BY 1 ORDER BY 1").fetchall()
    return [{"image_id": i, "exports": runs or []} for i, runs in rows]


def _wanted_table(wanted: dict[str, tuple[str, bool]]) -> pa.Table:
    return pa.table({"metric": list(wanted), "version": [v for v, _ in wanted.values()],
                     "fullref": [f for _, f in wanted.values()]}, schema=_WANTED)
