"""Logins: the signed session cookie, growing delays after failed logins, a bounded argon2 pool."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, TimestampSigner

COOKIE = "hfaid_session"


class CookieCodec:
    """Session tokens in the cookie are signed and timestamped (itsdangerous): a forged or
    expired cookie is refused before the catalog is asked. The key lives beside the catalog
    (mode 0600), so sessions survive a server restart."""

    def __init__(self, key_file: Path, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._signer = TimestampSigner(_load_key(key_file), salt="hfaid-review-session")

    def encode(self, token: str) -> str:
        return self._signer.sign(token).decode()

    def decode(self, cookie: str | None) -> str | None:
        """The session token inside a cookie value, or None if it is forged or too old."""
        if not cookie:
            return None
        try:
            return self._signer.unsign(cookie, max_age=self.max_age_s).decode()
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None


def _load_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # first writer wins; a second server reads the winner's key
    except FileExistsError:
        pass
    tmp.unlink()
    return path.read_bytes()


class LoginLimiter:
    """Failed logins are counted per (name, client address) and per client address. After
    `free` failures within `window_s` each further try of that key must wait `base_s`, then
    twice that, and so on up to `max_s`: a guesser slows down exponentially, while the real
    owner of a name, coming from another address, is never locked out. A success clears the
    (name, client) count. In-process and thread-safe; bounded in memory."""

    def __init__(
        self,
        free: int = 5,
        base_s: float = 1.0,
        max_s: float = 60.0,
        window_s: float = 900.0,
        client_free: int = 20,
        max_keys: int = 100_000,
    ) -> None:
        self.free, self.base_s, self.max_s, self.window_s = free, base_s, max_s, window_s
        self.client_free, self.max_keys = client_free, max_keys
        self._failures: OrderedDict[tuple, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, name: str, client: str) -> list[tuple[tuple, int]]:
        return [(("name", name.lower(), client), self.free), (("client", client), self.client_free)]

    def wait_s(self, name: str, client: str, now: float | None = None) -> float:
        """Seconds until this name may be tried again from this client (0 when allowed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(self._wait(key, free, now) for key, free in self._keys(name, client))

    def _wait(self, key: tuple, free: int, now: float) -> float:
        failures = self._failures.get(key)
        if not failures:
            return 0.0
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        extra = len(failures) - free
        if extra < 0:
            return 0.0
        delay = min(self.max_s, self.base_s * 2**extra)
        return max(0.0, failures[-1] + delay - now)

    def failed(self, name: str, client: str, now: float | None = None) -> float:
        """Count a failure; returns how long the next try of this name must wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key, _ in self._keys(name, client):
                self._failures.setdefault(key, deque()).append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
            return max(self._wait(key, free, now) for key, free in self._keys(name, client))

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            self._failures.pop(("name", name.lower(), client), None)


def _lower_priority() -> None:
    """Run this pool thread at a lower CPU priority than the threads serving votes (Linux sets
    niceness per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class VerifyPool:
    """Password checks (argon2, ~0.2 s of CPU each by design) on `workers` low-priority threads
    with at most `queue` more waiting, and one at a time per client address. Beyond that
    `submit` returns None at once and the login is answered "busy": a flood of logins costs at
    most `workers` cores, never the voters', and one flooding client holds one slot at most."""

    def __init__(self, workers: int = 1, queue: int = 4) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="hfaid-argon2", initializer=_lower_priority
        )
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._clients: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, client: str = "") -> Future | None:
        with self._lock:
            if client in self._clients or not self._slots.acquire(blocking=False):
                return None
            self._clients.add(client)

        def done(_: Future) -> None:
            with self._lock:
                self._clients.discard(client)
            self._slots.release()

        future = self._pool.submit(fn, *args)
        future.add_done_callback(done)
        return future
