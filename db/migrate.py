"""Create or upgrade a catalog in place by applying the numbered SQL migrations it lacks."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import duckdb

from db.catalog import Catalog, in_transaction
from db.errors import CatalogError
from db.scores import rebuild_latest_scores

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    # A data step SQL cannot say (columns named by the data), run in the same transaction.
    follow_up: Callable[[duckdb.DuckDBPyConnection], None] | None = None


_FOLLOW_UPS = {13: rebuild_latest_scores}


def available_migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("db.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            version = int(match["version"])
            found.append(Migration(version, match["name"], entry.read_text(),
                                   _FOLLOW_UPS.get(version)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in db/migrations: {versions}")
    return found


def latest_version() -> int:
    return available_migrations()[-1].version


def current_version(catalog: Catalog) -> int:
    """Schema version of an existing catalog (0 for an empty file)."""
    with catalog.connect(read_only=True) as con:
        return _version(con)


def _version(con) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(
    catalog: Catalog, upto: int | None = None, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply every missing migration (up to `upto`), each in its own transaction."""
    migrations = available_migrations() if migrations is None else migrations
    catalog.path.parent.mkdir(parents=True, exist_ok=True)
    applied: list[Migration] = []
    with catalog.connect() as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP DEFAULT now())"
        )
        have = _version(con)
        newest = migrations[-1].version
        if have > newest:
            raise CatalogError(
                f"catalog {catalog.path} has schema version {have}, newer than this hfaid "
                f"({newest}); upgrade hfaid"
            )
        # Apply every migration not yet recorded (not just those above the maximum), so a
        # migration numbered below one already applied is never skipped.
        done = _applied(con)
        for migration in migrations:
            if migration.version in done or (upto is not None and migration.version > upto):
                continue
            with in_transaction(con):
                con.execute(migration.sql)
                if migration.follow_up is not None:
                    migration.follow_up(con)
                con.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                    [migration.version, migration.name],
                )
            applied.append(migration)
    return applied


def require_current(catalog: Catalog) -> None:
    """Fail with a clear message unless the catalog exists and has every migration applied."""
    if not catalog.path.exists():
        raise CatalogError(f"catalog {catalog.path} does not exist (create it with `hfaid init`)")
    with catalog.connect(read_only=True) as con:
        done = _applied(con)
    missing = [m for m in available_migrations() if m.version not in done]
    if missing:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
        raise CatalogError(
            f"catalog {catalog.path} lacks schema migration(s) {names}; run `hfaid init` "
            "to upgrade it in place"
        )


def _applied(con) -> set[int]:
    if not _version(con):
        return set()
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
