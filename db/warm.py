"""Keeps a busy server's catalog instance open between units of work, with gaps for other writers.

Opening a DuckDB file costs tens of milliseconds (more on a loaded machine), and the review app
opens it once per click (db.review.next_images). While the app is busy, one extra connection
held here keeps the database instance alive, so each unit of work's own `catalog.connect()` is
cheap. It is closed
after `idle_s` without use, and at the latest after `max_hold_s`, followed by a `gap_s` pause in
which it is not reopened: other processes (ingest, scoring) retry the file lock with at most
~1.5 s between attempts, so they always get a turn and are never starved by reviewers.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from contextlib import AbstractContextManager

from db.catalog import Catalog
from db.errors import CatalogLockedError

# Closed at interpreter exit, before daemon threads are frozen: a watcher caught closing
# DuckDB's instance at finalisation aborts the process ("FATAL: exception not rethrown").
_KEEPERS: weakref.WeakSet[InstanceKeeper] = weakref.WeakSet()


@atexit.register
def _close_keepers() -> None:
    for keeper in list(_KEEPERS):
        keeper.close()
        if keeper._watcher is not None:
            keeper._watcher.join(timeout=10)


class InstanceKeeper:
    def __init__(
        self,
        catalog: Catalog,
        idle_s: float = 2.0,
        max_hold_s: float = 8.0,
        gap_s: float = 2.5,
        threads: int | None = None,
    ) -> None:
        # One try, no waiting: if another process holds the lock we simply run cold.
        self._catalog = Catalog(catalog.path, lock_timeout_s=0)
        # DuckDB threads of the held instance: many tiny statements run cheaper on one thread.
        self.threads = threads
        self.idle_s, self.max_hold_s, self.gap_s = idle_s, max_hold_s, gap_s
        self._lock = threading.Lock()
        self._held: AbstractContextManager | None = None
        self._opened = self._last = self._gap_until = 0.0
        self._watcher: threading.Thread | None = None
        _KEEPERS.add(self)

    @property
    def holding(self) -> bool:
        return self._held is not None

    def touch(self) -> None:
        """Note activity; open the keeper connection if allowed and not open yet."""
        now = time.monotonic()
        with self._lock:
            self._last = now
            if self._held is not None or now < self._gap_until or not self._catalog.path.exists():
                return
            held = self._catalog.connect()
            try:
                con = held.__enter__()
                if self.threads:
                    con.execute(f"SET threads = {int(self.threads)}")
            except CatalogLockedError:
                return
            self._held, self._opened = held, now
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(
                    target=self._watch, daemon=True, name="hfaid-instance-keeper"
                )
                self._watcher.start()

    def close(self) -> None:
        with self._lock:
            self._release(time.monotonic(), gap=False)

    def _watch(self) -> None:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with self._lock:
                if self._held is None:
                    return
                if now - self._opened >= self.max_hold_s:
                    self._release(now, gap=True)
                elif now - self._last >= self.idle_s:
                    self._release(now, gap=False)

    def _release(self, now: float, gap: bool) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.__exit__(None, None, None)
            if gap:
                self._gap_until = now + self.gap_s
