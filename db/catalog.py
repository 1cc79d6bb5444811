"""Short-lived DuckDB connections to the catalog, with lock-conflict retry and clear errors."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from db.errors import CatalogError, CatalogLockedError

DEFAULT_CATALOG = "hfaid.duckdb"
# DuckDB shares one database instance per file within a process; opening it in one thread
# while another closes its last connection can fail ("Unique file handle conflict"), so
# threads take turns at those two moments (the work in between runs concurrently).
_OPEN_CLOSE = threading.Lock()
T = TypeVar("T")
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


@contextmanager
def in_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction on an open connection: committed on success, rolled back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def default_catalog_path() -> Path:
    """The catalog named by $HFAID_CATALOG, else ./hfaid.duckdb."""
    return Path(os.environ.get("HFAID_CATALOG", DEFAULT_CATALOG))


@dataclass(frozen=True)
class Catalog:
    """A catalog file; every unit of work opens it with `connect()` and closes it promptly."""

    path: Path
    lock_timeout_s: float = 60.0

    @property
    def work_dir(self) -> Path:
        """Folder beside the catalog for shard result files and caches."""
        return self.path.with_name(self.path.name + ".work")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog, waiting with backoff while another process holds the lock."""
        con = self._open(read_only)
        try:
            yield con
        finally:
            with _OPEN_CLOSE:
                con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction: all or nothing."""
        with self.connect() as con, in_transaction(con):
            yield con

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if read_only and not self.path.exists():
            raise CatalogError(f"catalog {self.path} does not exist (create it with `hfaid init`)")
        if self.path.is_dir():
            raise CatalogError(f"catalog {self.path} is a directory, not a DuckDB file")

        def connect() -> duckdb.DuckDBPyConnection:
            try:
                with _OPEN_CLOSE:
                    return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.ConnectionException as exc:
                # This process already has the file open read-write (e.g. the review server's
                # other sessions): DuckDB refuses a read-only second instance, so share that one.
                if read_only and "different configuration" in str(exc):
                    with _OPEN_CLOSE:
                        return duckdb.connect(str(self.path))
                raise CatalogError(_explain_open_error(self.path, str(exc))) from None

        return self.retry_while_locked(connect)

    def retry_while_locked(self, open_fn: Callable[[], T]) -> T:
        """Call `open_fn` (which opens this catalog file), retrying with backoff while another
        process holds its lock, up to lock_timeout_s; other failures become one-line errors."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.02
        while True:
            try:
                return open_fn()
            except duckdb.IOException as exc:
                text = str(exc)
                holder = _LOCK_HOLDER.search(text)
                if holder is None:
                    raise CatalogError(_explain_open_error(self.path, text)) from None
                if time.monotonic() >= deadline:
                    raise CatalogLockedError(
                        f"catalog {self.path} is locked by {holder['prog']} (PID {holder['pid']}); "
                        f"gave up after {self.lock_timeout_s:g} s (raise [catalog] lock_timeout_s "
                        "or wait for that process to finish)"
                    ) from None
            except duckdb.Error as exc:
                raise CatalogError(_explain_open_error(self.path, str(exc))) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


def _explain_open_error(path: Path, text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    if "not a valid DuckDB database file" in text:
        return f"catalog {path} is not a DuckDB database file"
    if "Permission denied" in text:
        return f"catalog {path} cannot be opened: permission denied"
    return f"catalog {path} cannot be opened: {first_line}"
