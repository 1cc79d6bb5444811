"""Reviewer accounts: argon2-hashed passwords, roles, disabling, and a login rate limiter."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db.catalog import Catalog
from db.errors import CatalogError

ROLES = ("reviewer", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_HASHER = PasswordHasher()  # argon2id with the library's recommended cost
# A real hash to verify against for unknown names, so timing does not reveal which names exist.
_DUMMY_HASH = _HASHER.hash("not-a-password")


class AccountError(CatalogError):
    """A bad account request (unknown name, duplicate, weak password); printed as one line."""


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str
    disabled: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def utcnow() -> datetime:
    """Naive UTC now: the catalog stores naive UTC timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def check_password(password: str) -> None:
    if len(password) < 8:
        raise AccountError("password must be at least 8 characters")


def add_reviewer(catalog: Catalog, name: str, role: str, password: str, actor: str = "cli") -> None:
    """Create an account; the name must be new."""
    if not _NAME.match(name):
        raise AccountError(f"reviewer name {name!r} must be 1-32 letters, digits, '_', '.' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    check_password(password)
    hashed = _HASHER.hash(password)
    with catalog.transaction() as con:
        if con.execute("SELECT 1 FROM reviewers WHERE name = ?", [name]).fetchone():
            raise AccountError(f"reviewer {name!r} already exists (use reset-password)")
        con.execute(
            "INSERT INTO reviewers (name, role, password_hash) VALUES (?, ?, ?)",
            [name, role, hashed],
        )
        _audit(con, actor, "account_add", {"name": name, "role": role})


def list_reviewers(catalog: Catalog) -> list[Reviewer]:
    with catalog.connect() as con:
        rows = con.execute("SELECT name, role, disabled FROM reviewers ORDER BY name").fetchall()
    return [Reviewer(*row) for row in rows]


def get_reviewer(catalog: Catalog, name: str) -> Reviewer | None:
    with catalog.connect() as con:
        row = con.execute(
            "SELECT name, role, disabled FROM reviewers WHERE name = ?", [name]
        ).fetchone()
    return Reviewer(*row) if row else None


def set_disabled(catalog: Catalog, name: str, disabled: bool = True, actor: str = "cli") -> None:
    with catalog.transaction() as con:
        _require(con, name)
        con.execute("UPDATE reviewers SET disabled = ? WHERE name = ?", [disabled, name])
        _audit(con, actor, "account_disable" if disabled else "account_enable", {"name": name})


def reset_password(catalog: Catalog, name: str, password: str, actor: str = "cli") -> None:
    check_password(password)
    hashed = _HASHER.hash(password)
    with catalog.transaction() as con:
        _require(con, name)
        con.execute("UPDATE reviewers SET password_hash = ? WHERE name = ?", [hashed, name])
        _audit(con, actor, "password_reset", {"name": name})


def verify_login(catalog: Catalog, name: str, password: str) -> Reviewer | None:
    """The account if the password matches and it is enabled; None otherwise."""
    with catalog.connect() as con:
        row = con.execute(
            "SELECT name, role, disabled, password_hash FROM reviewers WHERE name = ?", [name]
        ).fetchone()
    try:
        _HASHER.verify(row[3] if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row[2]:
        return None
    return Reviewer(row[0], row[1], row[2])


class LoginLimiter:
    """At most `attempts` failed logins per username within `window_s` (in-process, thread-safe)."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, name: str, now: float | None = None) -> float:
        """Seconds until `name` may try again (0 when allowed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(name.lower())
            if not failures:
                return 0.0
            while failures and now - failures[0] > self.window_s:
                failures.popleft()
            if len(failures) < self.attempts:
                return 0.0
            return max(0.0, self.window_s - (now - failures[0]))

    def failed(self, name: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._failures.setdefault(name.lower(), deque()).append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name.lower(), None)


def _require(con, name: str) -> None:
    if not con.execute("SELECT 1 FROM reviewers WHERE name = ?", [name]).fetchone():
        raise AccountError(f"no reviewer named {name!r} (see `hfaid reviewers list`)")


def _audit(con, actor: str, action: str, detail: dict) -> None:
    con.execute(
        "INSERT INTO review_audit (event_at, actor, action, detail) VALUES (?, ?, ?, ?)",
        [utcnow(), actor, action, json.dumps(detail)],
    )
