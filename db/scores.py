"""Long-format scores and the wide table of latest values kept beside them: inserts without
duplicates, and the one-row-per-image export."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from db.catalog import Catalog
from db.sqltext import sql_literal, sql_name


def write_scores(catalog: Catalog, rows: pa.Table, run_id: int) -> int:
    """Insert scores from an in-memory table (image_id, metric, value, version), skipping dupes."""
    with catalog.transaction() as con:
        con.register("incoming", rows)
        added = insert_scores(con, "SELECT image_id, metric, value, version FROM incoming", run_id)
        con.unregister("incoming")
    return added


def insert_scores(con: duckdb.DuckDBPyConnection, candidates: str, run_id: int | None) -> int:
    """Insert the rows of the query `candidates` (image_id, metric, value, version) whose
    (image, metric, version) the catalog lacks, and carry them into scores_latest. Every write
    of scores goes through here, inside the caller's transaction; returns the rows added."""
    # The rows already in the catalog are found by a join that the small side drives (DuckDB
    # pushes its keys into the scan of `scores`): at 12M rows 5x faster than NOT EXISTS,
    # which hashes the whole of `scores`.
    con.execute(
        "CREATE TEMP TABLE new_scores AS "
        "WITH c AS (SELECT DISTINCT ON (image_id, metric, version) "
        f"  image_id, metric, value, version FROM ({candidates}) "
        "  ORDER BY image_id, metric, version), "
        "have AS (SELECT s.image_id, s.metric, s.version FROM scores s "
        "  JOIN c USING (image_id, metric, version)) "
        "SELECT c.* FROM c ANTI JOIN have USING (image_id, metric, version) "
        "ORDER BY image_id, metric, version"
    )
    added = con.execute("SELECT count(*) FROM new_scores").fetchone()[0]
    if added:
        con.execute(
            "INSERT INTO scores (image_id, metric, value, version, run_id) "
            "SELECT image_id, metric, value, version, ? FROM new_scores",
            [run_id],
        )
        _carry_latest(con)
    con.execute("DROP TABLE new_scores")
    return added


def _carry_latest(con: duckdb.DuckDBPyConnection) -> None:
    """new_scores are the newest rows of their (image, metric): they overwrite its cell (NULL
    and NaN never do). At 1M images this is one scan of the 1M-row table per write."""
    metrics = [r[0] for r in con.execute(
        "SELECT DISTINCT metric FROM new_scores ORDER BY 1").fetchall()]
    positions = _positions(con, metrics)
    cols = [f"m{positions[m]}" for m in metrics]
    # A metric written at two versions in one call: the greater version string wins. NaN is
    # no value (selection's rule): it leaves the cell as it was.
    pivot = ", ".join(f"arg_max(value, version) FILTER (WHERE metric = {sql_literal(m)} "
                      f"AND NOT isnan(value)) AS {c}" for m, c in zip(metrics, cols, strict=True))
    con.execute(f"CREATE TEMP TABLE new_latest AS SELECT image_id, {pivot} "
                "FROM new_scores GROUP BY image_id")
    con.execute(
        f"UPDATE scores_latest AS l SET {', '.join(f'{c} = coalesce(n.{c}, l.{c})' for c in cols)} "
        "FROM new_latest n WHERE l.image_id = n.image_id"
    )
    con.execute(
        f"INSERT INTO scores_latest (image_id, path, {', '.join(cols)}) "
        f"SELECT n.image_id, p.path, {', '.join(f'n.{c}' for c in cols)} FROM new_latest n "
        f"JOIN ({_paths_of('SELECT image_id FROM new_latest')}) p "
        "USING (image_id) "
        "WHERE NOT EXISTS (SELECT 1 FROM scores_latest l WHERE l.image_id = n.image_id) "
        "ORDER BY n.image_id"
    )
    con.execute("DROP TABLE new_latest")


def _paths_of(ids: str) -> str:
    """The readable path of the images the query `ids` names (the smallest, as the image_paths
    view; NULL for an image no path holds) without aggregating every path of the catalog."""
    return (f"SELECT a.image_id, min(q.path) AS path FROM ({ids}) a "
            "LEFT JOIN paths q USING (image_id) GROUP BY a.image_id")


def refresh_latest_paths(con: duckdb.DuckDBPyConnection, ids: str) -> None:
    """After paths changed (ingest), set the path of the images the query `ids` names."""
    con.execute(
        f"UPDATE scores_latest AS l SET path = p.path FROM ({_paths_of(ids)}) p "
        "WHERE l.image_id = p.image_id AND l.path IS DISTINCT FROM p.path"
    )


def latest_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """metric -> its column in scores_latest, for every metric with a stored score."""
    return {metric: f"m{position}" for metric, position in con.execute(
        "SELECT metric, position FROM score_columns ORDER BY metric").fetchall()}


def wanted_columns(column: dict[str, str], metrics: list[str], prefix: str = "") -> str:
    """The select list m0..mN: each wanted metric's column of scores_latest (`column`, from
    latest_columns; `prefix` is the table's alias), NULL for a metric never scored."""
    return ", ".join(
        f"{prefix}{column[m]} AS m{i}" if m in column else f"NULL::DOUBLE AS m{i}"
        for i, m in enumerate(metrics)
    ) or "NULL AS _none"


def _positions(con: duckdb.DuckDBPyConnection, metrics: list[str]) -> dict[str, int]:
    """Each metric's column number in scores_latest; a new metric gets the next one."""
    known = dict(con.execute("SELECT metric, position FROM score_columns").fetchall())
    for metric in metrics:
        if metric not in known:
            known[metric] = max(known.values(), default=0) + 1
            con.execute("INSERT INTO score_columns VALUES (?, ?)", [metric, known[metric]])
            con.execute(f"ALTER TABLE scores_latest ADD COLUMN m{known[metric]} DOUBLE")
    return known


def rebuild_latest_scores(con: duckdb.DuckDBPyConnection) -> None:
    """scores_latest recomputed from every score row (each metric's value with the latest
    created_at): the migration that adds the table, and catalogs built by hand in SQL."""
    metrics = [r[0] for r in con.execute(
        "SELECT DISTINCT metric FROM scores ORDER BY 1").fetchall()]
    con.execute("DELETE FROM score_columns")
    for position, metric in enumerate(metrics, start=1):
        con.execute("INSERT INTO score_columns VALUES (?, ?)", [metric, position])
    con.execute("DROP TABLE scores_latest")
    columns = "".join(f", m{i} DOUBLE" for i in range(1, len(metrics) + 1))
    con.execute(f"CREATE TABLE scores_latest (image_id VARCHAR NOT NULL, path VARCHAR{columns})")
    pivot = "".join(f", arg_max(value, created_at) FILTER (WHERE metric = {sql_literal(m)} "
                    f"AND NOT isnan(value)) AS m{i}" for i, m in enumerate(metrics, start=1))
    values = "".join(f", s.m{i}" for i in range(1, len(metrics) + 1))
    con.execute(
        f"INSERT INTO scores_latest SELECT s.image_id, p.path{values} "
        f"FROM (SELECT image_id{pivot} FROM scores GROUP BY image_id) s "
        "LEFT JOIN image_paths p USING (image_id) ORDER BY s.image_id"
    )


# DuckDB's memory for the export: a scan of one table streams, and the cap keeps DuckDB's
# cache of the catalog from growing with it.
EXPORT_MEMORY_MB = 640
EXPORT_BATCH_ROWS = 65_536


@contextmanager
def _export_connection(catalog: Catalog) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A capped read-only connection and the export's query: one row per scored image that
    still has a path (image_id, path, and one column per metric, by name, holding its latest
    value) in the order the images were first scored (a filtered scan of one table keeps
    insertion order in DuckDB: no sort, no join)."""
    with catalog.connect(read_only=True) as con:
        con.execute(f"SET memory_limit = '{EXPORT_MEMORY_MB}MB'")
        named = "".join(f", {column} AS {sql_name(metric)}"
                        for metric, column in latest_columns(con).items())
        yield con, f"SELECT image_id, path{named} FROM scores_latest WHERE path IS NOT NULL"


@contextmanager
def latest_scores_wide(
    catalog: Catalog, batch_rows: int = EXPORT_BATCH_ROWS
) -> Iterator[pa.RecordBatchReader]:
    """The export (see _export_connection) as a stream of record batches: memory stays
    bounded at any catalog size."""
    with _export_connection(catalog) as (con, query):
        yield con.sql(query).to_arrow_reader(batch_rows)


def copy_latest_scores_parquet(catalog: Catalog, out: Path) -> int:
    """The export written by DuckDB straight to a Parquet file; returns the rows written. A
    write failure is an OSError with DuckDB's reason."""
    with _export_connection(catalog) as (con, query):
        try:
            return con.execute(
                f"COPY ({query}) TO {sql_literal(str(out))} (FORMAT parquet)").fetchone()[0]
        except duckdb.IOException as exc:
            raise OSError(str(exc).removeprefix("IO Error: ")) from None
