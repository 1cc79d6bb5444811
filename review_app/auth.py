"""Logins: the signed session cookie, growing delays after failed logins, a bounded argon2 pool."""

from __future__ import annotations

import hashlib
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


class Sessions:
    """Who a session cookie belongs to, as the catalog says, remembered `ttl_s` so the requests
    of one click do not each ask the catalog. A logout, disabling or password reset made in
    this server ends the session here at once; one made elsewhere (the CLI) within `ttl_s`.
    Votes and decisions check the account again inside their own transaction."""

    def __init__(
        self, codec: CookieCodec, lookup: Callable[[str], Any], ttl_s: float = 1.0
    ) -> None:
        self.codec, self._lookup, self.ttl_s = codec, lookup, ttl_s
        self._seen: dict[str, tuple[float, Any]] = {}
        self._ended: set[str] = set()  # token hashes ended in this process
        self._lock = threading.Lock()

    def token(self, cookie: str | None) -> str | None:
        token = self.codec.decode(cookie)
        return None if token is None or token_hash(token) in self._ended else token

    def user(self, cookie: str | None):
        """The enabled account behind the cookie, or None."""
        token = self.token(cookie)
        if token is None:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(token)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        account = self._lookup(token)
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[token] = (now, account)
        return account

    def end(self, token: str) -> None:
        with self._lock:
            self._ended.add(token_hash(token))
            self._seen.pop(token, None)

    def forget(self, name: str) -> None:
        """An account was disabled or its password reset here: ask the catalog next time."""
        with self._lock:
            for token, (_, account) in list(self._seen.items()):
                if account is not None and account.name == name:
                    self._ended.add(token_hash(token))
                    del self._seen[token]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tickets:
    """Signed, short-lived tickets naming the session and the image it may load, handed out
    with each leased image: loading a bundle then needs no catalog query, and a ticket is
    useless without its session's cookie or after that session ended."""

    def __init__(self, key_file: Path, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._signer = TimestampSigner(_load_key(key_file), salt="hfaid-review-image")

    def issue(self, token: str, image_id: str) -> str:
        return self._signer.sign(f"{token_hash(token)[:32]}.{image_id}").decode()

    def allows(self, ticket: str | None, token: str, image_id: str) -> bool:
        if not ticket:
            return False
        try:
            value = self._signer.unsign(ticket, max_age=self.max_age_s).decode()
        except BadSignature:
            return False
        return value == f"{token_hash(token)[:32]}.{image_id}"
