"""Reviewer accounts (argon2-hashed passwords, roles, disabling) and their login sessions."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db import review_queue
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
    with review_queue.writing(catalog) as con:
        _require_admin(con, actor)
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
    """Disable (or enable) an account. Disabling ends its sessions and frees its leases at once:
    its open browser can do nothing more and holds no image from others."""
    with review_queue.writing(catalog) as con:
        _require_admin(con, actor)
        _require(con, name)
        if disabled and actor == name:
            raise AccountError("you cannot disable your own account")
        con.execute("UPDATE reviewers SET disabled = ? WHERE name = ?", [disabled, name])
        if disabled:
            _end_sessions(con, name, "account disabled")
            review_queue.release(con, name)
        _audit(con, actor, "account_disable" if disabled else "account_enable", {"name": name})


def reset_password(catalog: Catalog, name: str, password: str, actor: str = "cli") -> None:
    """Set a new password; the account's sessions end (whoever knew the old one is out)."""
    check_password(password)
    hashed = _HASHER.hash(password)
    with review_queue.writing(catalog) as con:
        _require_admin(con, actor)
        _require(con, name)
        con.execute("UPDATE reviewers SET password_hash = ? WHERE name = ?", [hashed, name])
        _end_sessions(con, name, "password reset")
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


# ---- sessions ------------------------------------------------------------------------------
# A session token is 32 random bytes handed to the browser once; the catalog keeps only its
# SHA-256, so reading the catalog (or a backup of it) gives no way into a session.


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    catalog: Catalog, name: str, client: str | None, hours: float, now: datetime | None = None
) -> str:
    """A new login session for an (already verified) account; returns its token."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with review_queue.writing(catalog) as con:
        con.execute(
            "INSERT INTO review_sessions (token_hash, reviewer, client, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [_token_hash(token), name, client, now, now + timedelta(hours=hours)],
        )
        # Sessions that ended or expired more than a day ago carry no information worth keeping.
        con.execute(
            "DELETE FROM review_sessions WHERE coalesce(ended_at, expires_at) < ?",
            [now - timedelta(days=1)],
        )
        _audit(con, name, "login", {"client": client})
    return token


def session_account(con, token: str, now: datetime | None = None) -> Reviewer | None:
    """The account behind a live session token (not ended, not expired, account enabled),
    read on the caller's connection so every action sees the catalog as it is now."""
    row = con.execute(
        "SELECT r.name, r.role, r.disabled FROM review_sessions s JOIN reviewers r "
        "ON r.name = s.reviewer WHERE s.token_hash = ? AND s.ended_at IS NULL "
        "AND s.expires_at > ? AND NOT r.disabled",
        [_token_hash(token), now or utcnow()],
    ).fetchone()
    return Reviewer(*row) if row else None


def session_user(catalog: Catalog, token: str) -> Reviewer | None:
    with catalog.connect() as con:
        return session_account(con, token)


def end_session(catalog: Catalog, token: str, why: str = "logout") -> str | None:
    """End one session (logout) and free its reviewer's leases; returns the reviewer's name."""
    with review_queue.writing(catalog) as con:
        row = con.execute(
            "UPDATE review_sessions SET ended_at = ?, ended_why = ? WHERE token_hash = ? "
            "AND ended_at IS NULL RETURNING reviewer",
            [utcnow(), why, _token_hash(token)],
        ).fetchone()
        if row is None:
            return None
        review_queue.release(con, row[0])
        _audit(con, row[0], why, {})
        return row[0]


def _end_sessions(con, name: str, why: str) -> None:
    con.execute(
        "UPDATE review_sessions SET ended_at = ?, ended_why = ? WHERE reviewer = ? "
        "AND ended_at IS NULL",
        [utcnow(), why, name],
    )


def _require_admin(con, actor: str) -> None:
    """Account changes come from the CLI (whoever can write the catalog file) or from an admin
    whose account is enabled now: the role is read here, never remembered from a login."""
    if actor == "cli" or actor == "demo":
        return
    row = con.execute("SELECT role, disabled FROM reviewers WHERE name = ?", [actor]).fetchone()
    if row is None or row[1] or row[0] != "admin":
        raise AccountError(f"{actor!r} is not an active admin")


def _require(con, name: str) -> None:
    if not con.execute("SELECT 1 FROM reviewers WHERE name = ?", [name]).fetchone():
        raise AccountError(f"no reviewer named {name!r} (see `hfaid reviewers list`)")


def _audit(con, actor: str, action: str, detail: dict) -> None:
    con.execute(
        "INSERT INTO review_audit (event_at, actor, action, detail) VALUES (?, ?, ?, ?)",
        [utcnow(), actor, action, json.dumps(detail)],
    )
