"""`hfaid sql` as a hostile user tries it: every escape refused in one line, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from db.accounts import add_reviewer, start_session
from db.catalog import Catalog
from db.errors import CatalogError
from db.query import run_readonly_query

PASSWORD = "correct horse battery"


@pytest.fixture
def secrets_catalog(catalog: Catalog, tmp_path: Path) -> Catalog:
    """A catalog with a reviewer (argon2 hash), a live login session (review_sessions holds
    its token's hash), and a table some later migration adds that no one has allowed yet."""
    add_reviewer(catalog, "alice", "reviewer", PASSWORD)
    start_session(catalog, "alice", "127.0.0.1", hours=1)
    with catalog.connect() as con:
        con.execute("CREATE TABLE later_table (secret VARCHAR)")
        con.execute("INSERT INTO later_table VALUES ('launch codes')")
    (tmp_path / "local.csv").write_text("a,b\n1,2\n")
    return catalog


def _sql(cli, catalog: Catalog, query: str, *extra: str) -> tuple[int, str, str]:
    return cli("sql", query, "--catalog", catalog.path, *extra)


ESCAPES = [
    ("COPY (SELECT name, role FROM reviewers) TO '{tmp}/x.csv'", "refused: COPY"),
    ("EXPORT DATABASE '{tmp}/dump'", "refused: EXPORT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "refused: ATTACH"),
    ("DETACH main", "refused: DETACH"),
    ("SELECT * FROM read_csv('{tmp}/local.csv')", "refused: read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "refused: read_csv_auto()"),
    ("SELECT * FROM read_text('/etc/passwd')", "refused: read_text()"),
    ("SELECT * FROM read_blob('/etc/passwd')", "refused: read_blob()"),
    ("SELECT * FROM read_parquet('{tmp}/x.parquet')", "refused: read_parquet()"),
    ("SELECT * FROM glob('{tmp}/*')", "refused: glob()"),
    ("SELECT * FROM '{tmp}/local.csv'", "refused: Cannot access file"),  # a replacement scan
    ("INSTALL shellfs FROM community", "refused: INSTALL"),
    ("LOAD httpfs", "refused: LOAD"),
    ("SET enable_external_access = true", "refused: SET"),
    ("RESET lock_configuration", "refused: RESET"),
    ("PRAGMA show_tables", "refused: PRAGMA"),
    ("CALL pragma_version()", "refused: CALL"),
    ("SELECT 1; COPY images TO '{tmp}/y.csv'", "refused: COPY"),
    ("SELECT 1; SELECT 2", "refused: 2 statements"),
    ("/* harmless */ SELECT 1; -- more\nDROP TABLE images", "refused: DROP"),
    ("EXPLAIN ANALYZE COPY images TO '{tmp}/z.csv'", "refused: COPY"),
    ("CREATE TEMP TABLE t AS SELECT 1", "refused: CREATE"),
    ("DELETE FROM images", "refused: DELETE"),
    ("USE memory", "refused: USE"),
    ("SELECT password_hash FROM reviewers", "refused: column password_hash"),
    ("SELECT * FROM query_table('reviewers')", "refused: query_table()"),
    ("SELECT * FROM query('SELECT 1')", "refused: query()"),
    ("SELECT * FROM pragma_storage_info('images')", "refused: pragma_storage_info()"),
    ("SELECT * FROM review_sessions", "refused: table review_sessions"),
    ('SELECT token_hash FROM "REVIEW_SESSIONS"', "refused: table review_sessions"),
    ("SELECT * FROM later_table", "refused: table later_table"),
]


def test_each_escape_is_refused_in_one_line(secrets_catalog, tmp_path, cli):
    for query, refusal in ESCAPES:
        with pytest.raises(CatalogError) as caught:
            run_readonly_query(secrets_catalog, query.format(tmp=tmp_path))
        message = str(caught.value)
        assert message.startswith(refusal), (query, message)
        assert "\n" not in message, query
    written = ("x.csv", "dump", "y.csv", "z.csv", "other.duckdb")
    assert not any((tmp_path / name).exists() for name in written)
    # What the command prints: one line, exit 2, never a traceback.
    for query in ("COPY images TO 'x.csv'", "SELECT * FROM read_text('/etc/passwd')",
                  "SELECT 1; INSTALL shellfs FROM community"):
        code, out, err = _sql(cli, secrets_catalog, query)
        assert code == 2 and err.startswith("error: refused: ") and out == ""
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_reviewers_are_readable_without_their_hashes(secrets_catalog, cli):
    code, out, _ = _sql(cli, secrets_catalog, "SELECT * FROM reviewers", "--json")
    assert code == 0 and '"name": "alice"' in out and '"role": "reviewer"' in out
    assert "password_hash" not in out and "$argon2" not in out
    for query in ("SUMMARIZE reviewers", "DESCRIBE reviewers",
                  "SELECT max(r::VARCHAR) FROM reviewers r"):
        code, out, _ = _sql(cli, secrets_catalog, query, "--json")
        assert code == 0 and "$argon2" not in out and "password_hash" not in out, query
    code, out, _ = _sql(cli, secrets_catalog, "SHOW TABLES", "--json")
    assert code == 0 and '"reviewers"' in out and '"images"' in out
    assert "review_sessions" not in out and "later_table" not in out


def test_queries_work_and_out_writes_parquet_and_csv(secrets_catalog, photo_pool, tmp_path, cli):
    assert cli("ingest", photo_pool, "--workers", "1", "--catalog", secrets_catalog.path)[0] == 0
    query = ("WITH f AS (SELECT format, width FROM images) "
             "SELECT format, count(*) AS n FROM f GROUP BY 1")
    code, out, _ = _sql(cli, secrets_catalog, query, "--out", tmp_path / "r.parquet")
    assert code == 0 and "wrote 1 rows" in out
    assert pq.read_table(tmp_path / "r.parquet").to_pylist() == [{"format": "JPEG", "n": 24}]
    code, _, _ = _sql(cli, secrets_catalog, "FROM image_paths ORDER BY path", "--out",
                      tmp_path / "p.csv")
    assert code == 0 and pacsv.read_csv(tmp_path / "p.csv").num_rows == 24
    code, _, err = _sql(cli, secrets_catalog, "SELECT 1", "--out", tmp_path / "r.xlsx")
    assert code == 2 and "name a .parquet, .csv or .jsonl file" in err
    code, out, _ = _sql(cli, secrets_catalog, "EXPLAIN SELECT count(*) FROM scores")
    assert code == 0


def test_the_catalog_is_unchanged_and_not_locked_for_writers(secrets_catalog, cli):
    before = secrets_catalog.path.read_bytes()
    assert _sql(cli, secrets_catalog, "SELECT count(*) FROM runs")[0] == 0
    assert secrets_catalog.path.read_bytes() == before
    with duckdb.connect(str(secrets_catalog.path)) as con:  # a writer can open it right after
        con.execute("SELECT 1")
