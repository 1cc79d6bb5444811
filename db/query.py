"""Ad-hoc SQL for `hfaid sql`: one query in a sandbox that sees the catalog's readable tables
(secrets redacted) and nothing else: no files, no settings, no extensions, no writes."""

from __future__ import annotations

import re
import secrets

import duckdb
import pyarrow as pa

from db.catalog import Catalog
from db.errors import CatalogError
from db.sqltext import sql_literal, sql_name

# What `hfaid sql` may read: table or view -> columns it never shows. A table that is not
# listed (e.g. one a later migration adds) does not exist for `hfaid sql` until it is added
# here, so a new table holding secrets is never readable by accident.
READABLE: dict[str, tuple[str, ...]] = {
    "schema_migrations": (),
    "runs": (),
    "images": (),
    "paths": (),
    "image_paths": (),
    "stage_outcomes": (),
    "scores": (),
    "clean_decodes": (),
    "phashes": (),
    "near_duplicates": (),
    "studies": (),
    "study_items": (),
    "study_members": (),
    "study_votes": (),
    "reviewers": ("password_hash",),
    "review_votes": (),
    "review_leases": (),
    "review_decisions": (),
    "review_audit": (),
    "captions": (),
    "source_captions": (),
    "exports": (),
    "export_items": (),
    "ingest_outcomes": (),
    "embeddings": (),
    "eval_sets": (),
    "eval_images": (),
    "eval_methods": (),
    "eval_outputs": (),
    "eval_scores": (),
    "orphan_images": (),
    "review_queue": (),
    "review_queue_meta": (),
    "review_frontiers": (),
    "review_skips": (),
    "score_columns": (),
    "scores_latest": (),  # its columns m<n> show under their metrics' names
}
# First words of the statements `hfaid sql` runs (DuckDB parses DESCRIBE, SHOW, SUMMARIZE,
# FROM-first queries and VALUES as SELECT statements).
QUERY_TYPES = {"SELECT", "EXPLAIN"}
# Table functions that run SQL given as text (which could name what the sandbox hides) or read
# raw storage (per-segment min/max of any column).
REFUSED_FUNCTIONS = {"query", "query_table", "pragma_storage_info", "pragma_metadata_info"}
# Table functions that read files; the sandbox refuses file access anyway, this says so first.
FILE_FUNCTIONS = re.compile(
    r"^(read_\w+|\w+_scan|glob|sniff_csv|parquet_\w+|iceberg_\w+|delta_\w+)$"
)
SANDBOX_SETTINGS = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
ALLOWED = "SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN"


class RefusedQueryError(CatalogError):
    """A statement `hfaid sql` does not run; the message names what was refused."""


def run_readonly_query(catalog: Catalog, sql: str) -> pa.Table:
    """Check `sql` is one query, then run it in the sandbox; every refusal and error is one line."""
    with _Sandbox(catalog) as box:
        hidden = {t for t in box.columns if t not in READABLE}
        hidden_columns = {c for cols in READABLE.values() for c in cols}
        check_query(box.con, sql, hidden, hidden_columns)
        box.lock()
        try:
            return box.con.sql(sql).to_arrow_table()
        except duckdb.PermissionException as exc:
            reason = _first_line(exc).removeprefix("Permission Error: ")
            raise RefusedQueryError(f"refused: {reason} (hfaid sql reads the catalog only; "
                                    "write a result with --out FILE)") from None
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {_first_line(exc)}") from None


def check_query(parser: duckdb.DuckDBPyConnection, sql: str, hidden_tables: set[str],
                hidden_columns: set[str]) -> None:
    """Refuse anything but one query, and any name of a hidden table or column."""
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as exc:
        raise CatalogError(f"query failed: {_first_line(exc)}") from None
    if not statements:
        raise RefusedQueryError("refused: no statement given")
    for statement in statements:
        word = _first_word(statement.query)
        if statement.type.name not in QUERY_TYPES:
            raise RefusedQueryError(
                f"refused: {word} (hfaid sql is read-only and runs only queries: {ALLOWED}; "
                "write a result with --out FILE.parquet|csv)"
            )
        if statement.type.name == "EXPLAIN":
            check_query(parser, _explained(statement.query), hidden_tables, hidden_columns)
    if len(statements) > 1:
        raise RefusedQueryError(f"refused: {len(statements)} statements (give one query per call)")
    for name in _names(sql):
        if name in REFUSED_FUNCTIONS:
            raise RefusedQueryError(f"refused: {name}() (it runs SQL given as text or reads raw "
                                    "storage, around what hfaid sql hides)")
        if FILE_FUNCTIONS.match(name):
            raise RefusedQueryError(f"refused: {name}() (hfaid sql reads the catalog only, "
                                    "never files)")
        if name in hidden_tables:
            raise RefusedQueryError(f"refused: table {name} is not readable through hfaid sql")
        if name in hidden_columns:
            raise RefusedQueryError(f"refused: column {name} is not readable through hfaid sql")


class _Sandbox:
    """An in-memory database with the catalog attached read-only under a name no query can
    know; `lock()` adds one view per readable table (secret columns left out), then turns off
    file access, extensions and settings changes."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.alias = "catalog_" + secrets.token_hex(8)

    def __enter__(self) -> _Sandbox:
        if not self.catalog.path.exists():
            raise CatalogError(f"catalog {self.catalog.path} does not exist")
        self.con = duckdb.connect(":memory:", config=SANDBOX_SETTINGS)
        try:
            self.catalog.retry_while_locked(
                lambda: self.con.execute(
                    f"ATTACH {sql_literal(str(self.catalog.path))} AS {self.alias} (READ_ONLY)")
            )
            self.columns: dict[str, list[str]] = {}
            for table, column in self.con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_catalog = ? AND table_schema = 'main' "
                "ORDER BY table_name, ordinal_position",
                [self.alias],
            ).fetchall():
                self.columns.setdefault(table, []).append(column)
        except BaseException:
            self.con.close()
            raise
        return self

    def lock(self) -> None:
        metric_of = {f"m{position}": metric for position, metric in self.con.execute(
            f"SELECT position, metric FROM {self.alias}.main.score_columns").fetchall()}
        for table, columns in self.columns.items():
            if table in READABLE:
                listed = ", ".join(
                    sql_name(c) + (f" AS {sql_name(metric_of[c])}"
                                  if table == "scores_latest" and c in metric_of else "")
                    for c in columns if c not in READABLE[table])
                self.con.execute(
                    f'CREATE VIEW "{table}" AS SELECT {listed} FROM {self.alias}.main."{table}"'
                )
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def __exit__(self, *exc) -> None:
        self.con.close()


def _names(sql: str) -> list[str]:
    """Identifiers, keywords and the words inside string constants, lower-cased (a table name
    can hide in a string, e.g. as a table function's argument)."""
    tokens = duckdb.tokenize(sql)
    names = []
    for i, (start, kind) in enumerate(tokens):
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
        text = sql[start:end].strip()
        if kind in (duckdb.token_type.identifier, duckdb.token_type.keyword):  # glob: a keyword
            names.append(text.strip('"').lower())
        elif kind == duckdb.token_type.string_const:
            names += re.findall(r"[a-z_][a-z0-9_]*", text.lower())
    return names


def _explained(sql: str) -> str:
    """The statement an EXPLAIN [ANALYZE] [(options)] statement explains."""
    match = re.match(r"\s*EXPLAIN\s+(ANALY[SZ]E\s+)?(\([^)]*\)\s*)?(?P<rest>.*)", sql,
                     re.IGNORECASE | re.DOTALL)
    return match["rest"] if match else ""


def _first_word(sql: str) -> str:
    words = re.findall(r"[A-Za-z_]+", re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL))
    return words[0].upper() if words else "statement"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
