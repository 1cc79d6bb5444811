"""Catalog: migrations, upgrades without data loss, lock waits, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from db.catalog import Catalog
from db.errors import CatalogError, CatalogLockedError
from db.migrate import (
    Migration,
    available_migrations,
    current_version,
    latest_version,
    migrate,
    require_current,
)


def test_init_creates_every_table_and_is_idempotent(tmp_path: Path, cli):
    path = tmp_path / "c.duckdb"
    code, out, _ = cli("init", "--catalog", path)
    assert code == 0 and f"schema version {latest_version()}" in out
    con = duckdb.connect(str(path), read_only=True)
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    con.close()
    assert {"images", "paths", "runs", "stage_outcomes", "scores", "schema_migrations"} <= tables
    code, out, _ = cli("init", "--catalog", path)
    assert code == 0 and "already current" in out


def test_catalog_of_older_schema_upgrades_in_place_without_data_loss(tmp_path: Path):
    cat = Catalog(tmp_path / "old.duckdb")
    migrate(cat, upto=1)
    assert current_version(cat) == 1
    with cat.connect() as con:
        con.execute(
            "INSERT INTO images (image_id, bytes, format, width, height) "
            "VALUES ('abc', 10, 'JPEG', 4, 3)"
        )
        con.execute("INSERT INTO paths (path, image_id, source) VALUES ('/x/a.jpg', 'abc', '/x')")
        con.execute(
            "INSERT INTO scores (image_id, metric, value, version) "
            "VALUES ('abc', 'niqe', 3.5, 'v1')"
        )
    applied = migrate(cat)
    assert [m.version for m in applied] == [m.version for m in available_migrations()][1:]
    assert current_version(cat) == latest_version()
    with cat.connect(read_only=True) as con:
        assert con.execute("SELECT image_id, width FROM images").fetchall() == [("abc", 4)]
        assert con.execute("SELECT path FROM paths").fetchall() == [("/x/a.jpg",)]
        assert con.execute("SELECT value FROM scores").fetchall() == [(3.5,)]


def test_catalog_newer_than_the_code_is_refused(tmp_path: Path):
    cat = Catalog(tmp_path / "new.duckdb")
    migrate(cat)
    with cat.connect() as con:
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    with pytest.raises(CatalogError, match="newer than this hfaid"):
        migrate(cat)


def test_not_duckdb_missing_and_directory_give_one_line_errors(tmp_path: Path, cli):
    text = tmp_path / "notes.duckdb"
    text.write_text("just some text, not a database\n" * 20)
    code, out, err = cli("funnel", "--catalog", text)
    assert code == 2 and err.strip() == f"error: catalog {text} is not a DuckDB database file"
    code, _, err = cli("funnel", "--catalog", tmp_path / "missing.duckdb")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "dir.duckdb"
    folder.mkdir()
    code, _, err = cli("init", "--catalog", folder)
    assert code == 2 and "is a directory" in err


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens the catalog read-write and keeps it for `seconds`."""
    script = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r})
        con.execute("SELECT 1")
        print("locked", flush=True)
        time.sleep({seconds})
        con.close()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _ingest(pool: Path, catalog: Path, *extra: str) -> subprocess.CompletedProcess:
    """`hfaid ingest POOL --catalog CATALOG ...` in its own process (a second writer)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hfaid.cli",
            "ingest",
            str(pool),
            "--catalog",
            str(catalog),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_second_writer_waits_for_the_lock_then_succeeds(tmp_path: Path, photo_pool: Path):
    path = tmp_path / "c.duckdb"
    migrate(Catalog(path))
    holder = _hold_lock(path, 3)
    started = time.monotonic()
    result = _ingest(photo_pool, path, "--workers", "1")
    holder.wait()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2  # it really waited for the holder
    with Catalog(path).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 24


def test_lock_wait_exceeded_names_file_and_holder_without_traceback(
    tmp_path: Path, photo_pool: Path
):
    path = tmp_path / "c.duckdb"
    migrate(Catalog(path))
    config = tmp_path / "cfg.toml"
    config.write_text("[catalog]\nlock_timeout_s = 1\n")
    holder = _hold_lock(path, 8)
    try:
        result = _ingest(photo_pool, path, "--config", str(config))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert str(path) in line and f"PID {holder.pid}" in line and "gave up after 1 s" in line


def test_lock_error_raised_directly_from_the_api(tmp_path: Path):
    path = tmp_path / "c.duckdb"
    migrate(Catalog(path))
    holder = _hold_lock(path, 5)
    try:
        with pytest.raises(CatalogLockedError, match="locked by"):
            with Catalog(path, lock_timeout_s=0.3).connect():
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_migration_numbered_below_an_applied_one_is_still_applied(tmp_path: Path):
    """A catalog that got 0001 and 0003 before 0002 existed gets 0002 on the next upgrade."""
    core = available_migrations()[0]
    first = Migration(2, "late", "CREATE TABLE late_table (x INTEGER);")
    newer = Migration(3, "early", "CREATE TABLE early_table (x INTEGER);")
    cat = Catalog(tmp_path / "gap.duckdb")
    assert [m.version for m in migrate(cat, migrations=[core, newer])] == [1, 3]
    applied = migrate(cat, migrations=[core, first, newer])
    assert [m.version for m in applied] == [2]
    with cat.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM late_table").fetchone() == (0,)
    with pytest.raises(CatalogError, match="lacks schema migration"):
        require_current(cat)  # the packaged migrations 0002+ are still missing here
