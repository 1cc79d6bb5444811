"""The two-reviewer rule: leases, votes, undo, adjudication, consensus outcomes and agreement."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from db.accounts import utcnow
from db.catalog import Catalog, in_transaction
from db.errors import CatalogError

STAGE = "review"
DECISIONS = ("accept", "reject")
VOTES_NEEDED = 2
# Reason tags for super-resolution training data, in the order the keyboard digits pick them.
REASONS: tuple[tuple[str, str], ...] = (
    ("blur", "blur"),
    ("noise", "noise"),
    ("jpeg_artifacts", "JPEG artefacts"),
    ("oversharpening", "over-sharpening / halos"),
    ("upscaled", "upscaled (fake high resolution)"),
    ("watermark_text", "watermark or text"),
    ("blurred_faces", "blurred faces"),
    ("poor_aesthetics", "poor aesthetics"),
    ("duplicate", "duplicate"),
)
REASON_TAGS = tuple(tag for tag, _ in REASONS)

# One writer at a time inside a process: DuckDB's optimistic concurrency would let two threads
# both see one vote and both add a second, so the rule check and the insert are serialised here
# (other processes are excluded by DuckDB's file lock).
_WRITE_LOCK = threading.Lock()


class ReviewError(CatalogError):
    """A vote, undo or decision the rule forbids; the message says why in one line."""


@contextmanager
def _write(con) -> Iterator[None]:
    """One write transaction on `con`, serialised with this process's other writers."""
    with _WRITE_LOCK, in_transaction(con):
        yield


# A queue is the set of images that passed `stage_input` (None: every ingested image).
def _queue_sql(stage_input: str | None) -> tuple[str, list]:
    if stage_input is None:
        return "SELECT image_id FROM images", []
    return "SELECT image_id FROM stage_outcomes WHERE stage = ? AND status = 'pass'", [stage_input]


def claim_next(
    catalog: Catalog,
    reviewer: str,
    stage_input: str | None,
    lease_s: float,
    now: datetime | None = None,
) -> str | None:
    """The reviewer's next image, leased to them; images with one vote first; None when done."""
    with catalog.connect() as con, _write(con):
        return _claim(con, reviewer, stage_input, lease_s, now or utcnow())


def _claim(
    con, reviewer: str, stage_input: str | None, lease_s: float, now: datetime
) -> str | None:
    queue, params = _queue_sql(stage_input)
    con.execute("DELETE FROM review_leases WHERE expires_at <= ?", [now])
    held = con.execute(
        "SELECT l.image_id FROM review_leases l WHERE l.reviewer = ? AND NOT EXISTS ("
        "SELECT 1 FROM review_votes v WHERE v.image_id = l.image_id AND v.reviewer = ? "
        "AND v.undone_at IS NULL) LIMIT 1",
        [reviewer, reviewer],
    ).fetchone()
    if held:
        con.execute(
            "UPDATE review_leases SET expires_at = ? WHERE reviewer = ? AND image_id = ?",
            [now + timedelta(seconds=lease_s), reviewer, held[0]],
        )
        return held[0]
    row = con.execute(
        f"""
        WITH q AS ({queue}),
        v AS (SELECT image_id, count(*) AS n, bool_or(reviewer = ?) AS mine
              FROM review_votes WHERE undone_at IS NULL GROUP BY image_id),
        l AS (SELECT image_id, count(*) AS n FROM review_leases
              WHERE reviewer <> ? GROUP BY image_id)
        SELECT q.image_id FROM q
        LEFT JOIN v ON v.image_id = q.image_id LEFT JOIN l ON l.image_id = q.image_id
        WHERE NOT coalesce(v.mine, false)
          AND coalesce(v.n, 0) + coalesce(l.n, 0) < {VOTES_NEEDED}
          AND q.image_id NOT IN (SELECT image_id FROM review_decisions)
        ORDER BY coalesce(v.n, 0) DESC, q.image_id
        LIMIT 1
        """,
        [*params, reviewer, reviewer],
    ).fetchone()
    con.execute("DELETE FROM review_leases WHERE reviewer = ?", [reviewer])
    if row is None:
        return None
    con.execute(
        "INSERT INTO review_leases (image_id, reviewer, expires_at) VALUES (?, ?, ?)",
        [row[0], reviewer, now + timedelta(seconds=lease_s)],
    )
    return row[0]


def upcoming_images(catalog: Catalog, stage_input: str | None, limit: int) -> list[tuple[str, str]]:
    """(image_id, path) of the next queue images nobody has voted on or leased, in the order
    `claim_next` hands them out: the ones whose previews are worth building before a click."""
    queue, params = _queue_sql(stage_input)
    with catalog.connect() as con:
        return con.execute(
            f"""WITH q AS ({queue})
            SELECT q.image_id, any_value(ip.path) FROM q JOIN image_paths ip USING (image_id)
            WHERE q.image_id NOT IN (SELECT image_id FROM review_votes WHERE undone_at IS NULL)
              AND q.image_id NOT IN (SELECT image_id FROM review_leases)
              AND q.image_id NOT IN (SELECT image_id FROM review_decisions)
            GROUP BY q.image_id ORDER BY q.image_id LIMIT ?""",
            [*params, limit],
        ).fetchall()


def release(catalog: Catalog, reviewer: str) -> None:
    """Drop the reviewer's lease (on logout), so the image goes back to the queue at once."""
    with catalog.connect() as con, _write(con):
        con.execute("DELETE FROM review_leases WHERE reviewer = ?", [reviewer])


def record_vote(
    catalog: Catalog,
    image_id: str,
    reviewer: str,
    decision: str,
    reasons: list[str] | None = None,
    comment: str | None = None,
    run_id: int | None = None,
    now: datetime | None = None,
) -> str:
    """Store one vote under the rule; returns the image's status afterwards."""
    vote = Vote(image_id, decision, tuple(reasons or ()), comment)
    with catalog.connect() as con, _write(con):
        return _cast(con, vote, reviewer, run_id, now or utcnow())


@dataclass(frozen=True)
class Vote:
    image_id: str
    decision: str  # accept | reject
    reasons: tuple[str, ...] = ()
    comment: str | None = None


@dataclass(frozen=True)
class ReviewView:
    """What the review page shows: the reviewer's leased image (None: done), its path, size and
    scores (`image_info`), their progress, and the outcome of the vote cast on the way here."""

    image_id: str | None
    info: dict[str, Any] | None
    progress: dict[str, int]
    status: str | None = None


def vote_and_next(
    catalog: Catalog,
    reviewer: str,
    stage_input: str | None,
    lease_s: float,
    vote: Vote | None = None,
    run_id: int | None = None,
    now: datetime | None = None,
) -> ReviewView:
    """Cast `vote` (if any) and lease the reviewer's next image in one transaction, then read
    what the page shows, all on one connection: a click costs one catalog open, not four.

    A vote the rule refuses raises ReviewError and changes nothing (no new lease either).
    """
    now = now or utcnow()
    with catalog.connect() as con:
        with _write(con):
            status = _cast(con, vote, reviewer, run_id, now) if vote else None
            image_id = _claim(con, reviewer, stage_input, lease_s, now)
        return _view(con, reviewer, stage_input, image_id, now, status)


def review_view(
    catalog: Catalog, reviewer: str, stage_input: str | None, image_id: str | None
) -> ReviewView:
    """The page's data for an image already leased (after an undo), on one connection."""
    with catalog.connect() as con:
        return _view(con, reviewer, stage_input, image_id, utcnow())


def _view(
    con,
    reviewer: str,
    stage_input: str | None,
    image_id: str | None,
    now: datetime,
    status: str | None = None,
) -> ReviewView:
    info = _image_info(con, image_id) if image_id else None
    return ReviewView(image_id, info, _progress(con, reviewer, stage_input, now), status)


def _cast(con, vote: Vote, reviewer: str, run_id: int | None, now: datetime) -> str:
    image_id, decision, reasons = vote.image_id, vote.decision, list(vote.reasons)
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be accept or reject, got {decision!r}")
    unknown = sorted(set(reasons) - set(REASON_TAGS))
    if unknown:
        raise ReviewError(f"unknown reason tag(s) {', '.join(unknown)}")
    # Every precondition in one statement (each round trip costs about half a millisecond,
    # and this runs under the write lock that all sessions share); checked in the same order.
    active, exists, decided, holds, others = con.execute(
        "SELECT (SELECT NOT disabled FROM reviewers WHERE name = $r), "
        "EXISTS (SELECT 1 FROM images WHERE image_id = $i), "
        "EXISTS (SELECT 1 FROM review_decisions WHERE image_id = $i), "
        "EXISTS (SELECT 1 FROM review_leases WHERE image_id = $i AND reviewer = $r "
        "AND expires_at > $now), "
        "(SELECT count(*) FROM review_leases WHERE image_id = $i AND reviewer <> $r "
        "AND expires_at > $now)",
        {"r": reviewer, "i": image_id, "now": now},
    ).fetchone()
    if not active:
        raise ReviewError(f"{reviewer!r} is not an active reviewer")
    if not exists:
        raise ReviewError(f"no image {image_id} in the catalog")
    votes = _current_votes(con, image_id)
    if any(v[0] == reviewer for v in votes):
        raise ReviewError(f"{reviewer} has already voted on image {image_id[:12]}")
    if decided:
        raise ReviewError(f"image {image_id[:12]} is already decided")
    if len(votes) >= VOTES_NEEDED or (not holds and len(votes) + others >= VOTES_NEEDED):
        raise ReviewError(f"image {image_id[:12]} already has the votes it needs")
    con.execute(
        "INSERT INTO review_votes (image_id, reviewer, decision, reasons, comment, cast_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [image_id, reviewer, decision, reasons, vote.comment or None, now],
    )
    con.execute(
        "DELETE FROM review_leases WHERE image_id = ? AND reviewer = ?", [image_id, reviewer]
    )
    _audit(
        con,
        now,
        reviewer,
        "vote",
        image_id,
        {"decision": decision, "reasons": reasons, "comment": vote.comment or None},
    )
    return _settle(con, image_id, run_id)


def undo_last_vote(
    catalog: Catalog, reviewer: str, window_s: float, lease_s: float, now: datetime | None = None
) -> str:
    """Withdraw the reviewer's latest vote if younger than `window_s`; returns its image id."""
    now = now or utcnow()
    with catalog.connect() as con, _write(con):
        row = con.execute(
            "SELECT vote_id, image_id, cast_at FROM review_votes WHERE reviewer = ? "
            "AND undone_at IS NULL ORDER BY cast_at DESC, vote_id DESC LIMIT 1",
            [reviewer],
        ).fetchone()
        if row is None:
            raise ReviewError("you have no vote to undo")
        vote_id, image_id, cast_at = row
        if (now - cast_at).total_seconds() > window_s:
            raise ReviewError(
                f"your last vote is older than {window_s:g} s and can no longer be undone"
            )
        if con.execute("SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]).fetchone():
            raise ReviewError("an admin has already decided that image; it can no longer be undone")
        con.execute("UPDATE review_votes SET undone_at = ? WHERE vote_id = ?", [now, vote_id])
        # The consensus this vote completed (if any) no longer holds.
        con.execute(
            "DELETE FROM stage_outcomes WHERE image_id = ? AND stage = ?", [image_id, STAGE]
        )
        con.execute("DELETE FROM review_leases WHERE reviewer = ?", [reviewer])
        con.execute(
            "INSERT INTO review_leases (image_id, reviewer, expires_at) VALUES (?, ?, ?)",
            [image_id, reviewer, now + timedelta(seconds=lease_s)],
        )
        _audit(con, now, reviewer, "undo", image_id, {"vote_id": vote_id})
        return image_id


def adjudicate(
    catalog: Catalog,
    image_id: str,
    admin: str,
    decision: str,
    note: str | None = None,
    run_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """An admin who did not vote on a split image decides it."""
    now = now or utcnow()
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be accept or reject, got {decision!r}")
    with catalog.connect() as con, _write(con):
        role = _require_active(con, admin)
        if role != "admin":
            raise ReviewError(f"{admin} is not an admin; only admins adjudicate")
        votes = _current_votes(con, image_id)
        if admin in {v[0] for v in votes}:
            raise ReviewError(f"{admin} voted on image {image_id[:12]} and cannot adjudicate it")
        if con.execute("SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]).fetchone():
            raise ReviewError(f"image {image_id[:12]} is already decided")
        if len(votes) < VOTES_NEEDED or len({v[1] for v in votes}) < 2:
            raise ReviewError(f"image {image_id[:12]} is not waiting for adjudication")
        con.execute(
            "INSERT INTO review_decisions (image_id, decision, decided_by, note, decided_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [image_id, decision, admin, note or None, now],
        )
        _audit(
            con, now, admin, "adjudicate", image_id, {"decision": decision, "note": note or None}
        )
        voters = ", ".join(f"{v[0]} {v[1]}" for v in votes)
        _write_outcome(
            con,
            image_id,
            "pass" if decision == "accept" else "reject",
            "adjudicated_accept" if decision == "accept" else "adjudicated_reject",
            f"split ({voters}); decided by {admin}" + (f": {note}" if note else ""),
            run_id,
        )


def _settle(con, image_id: str, run_id: int | None) -> str:
    votes = _current_votes(con, image_id)
    if len(votes) < VOTES_NEEDED:
        return "pending"
    decisions = {v[1] for v in votes}
    if decisions == {"accept"}:
        _write_outcome(
            con,
            image_id,
            "pass",
            "accepted",
            "accepted by " + ", ".join(v[0] for v in votes),
            run_id,
        )
        return "accepted"
    if decisions == {"reject"}:
        tags = [set(v[2] or []) for v in votes]
        shared = [t for t in REASON_TAGS if all(t in s for s in tags)]
        given = [t for t in REASON_TAGS if any(t in s for s in tags)]
        reason = shared[0] if shared else (given[0] if given else "reviewers_rejected")
        detail = "rejected by " + ", ".join(
            f"{v[0]} ({', '.join(v[2]) or 'no reason'})" for v in votes
        )
        _write_outcome(con, image_id, "reject", reason, detail, run_id)
        return "rejected"
    return "needs_adjudication"


def _write_outcome(
    con, image_id: str, status: str, reason: str, detail: str, run_id: int | None
) -> None:
    # Same replace-per-(image, stage) semantics as db.outcomes, inside the vote's transaction.
    con.execute("DELETE FROM stage_outcomes WHERE image_id = ? AND stage = ?", [image_id, STAGE])
    con.execute(
        "INSERT INTO stage_outcomes (image_id, stage, status, reason, detail, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [image_id, STAGE, status, reason, detail, run_id],
    )


def _current_votes(con, image_id: str) -> list[tuple]:
    return con.execute(
        "SELECT reviewer, decision, reasons, comment FROM review_votes "
        "WHERE image_id = ? AND undone_at IS NULL ORDER BY cast_at, vote_id",
        [image_id],
    ).fetchall()


def _require_active(con, name: str) -> str:
    row = con.execute("SELECT role, disabled FROM reviewers WHERE name = ?", [name]).fetchone()
    if row is None or row[1]:
        raise ReviewError(f"{name!r} is not an active reviewer")
    return row[0]


def _audit(con, at: datetime, actor: str, action: str, image_id: str | None, detail: dict) -> None:
    con.execute(
        "INSERT INTO review_audit (event_at, actor, action, image_id, detail) "
        "VALUES (?, ?, ?, ?, ?)",
        [at, actor, action, image_id, json.dumps(detail)],
    )


# ---- read side ----------------------------------------------------------------------------
# Reads use read-write connections: inside the server a read-only open would clash with the
# read-write connections other sessions hold on the same file.

_SUMMARY_SQL = """
WITH v AS (
    SELECT image_id,
           count(*) FILTER (WHERE decision = 'accept')::INTEGER AS accepts,
           count(*) FILTER (WHERE decision = 'reject')::INTEGER AS rejects,
           list(reviewer ORDER BY cast_at, vote_id) AS reviewers
    FROM review_votes WHERE undone_at IS NULL GROUP BY image_id
)
SELECT v.image_id, v.accepts, v.rejects, v.reviewers,
       CASE WHEN d.image_id IS NOT NULL THEN d.decided_by
            WHEN v.accepts >= 2 OR v.rejects >= 2 THEN 'consensus' END AS decided_by,
       CASE WHEN d.decision = 'accept' THEN 'accepted'
            WHEN d.decision = 'reject' THEN 'rejected'
            WHEN v.accepts >= 2 THEN 'accepted'
            WHEN v.rejects >= 2 THEN 'rejected'
            WHEN v.accepts + v.rejects >= 2 THEN 'needs_adjudication'
            ELSE 'pending' END AS status
FROM v LEFT JOIN review_decisions d ON d.image_id = v.image_id
ORDER BY v.image_id
"""


def vote_summary(catalog: Catalog) -> pa.Table:
    """Per voted image: accepts, rejects, reviewers, decided_by (consensus|admin), status."""
    with catalog.connect() as con:
        return con.sql(_SUMMARY_SQL).to_arrow_table()


def current_votes(catalog: Catalog) -> pa.Table:
    """Every vote not undone: image_id, reviewer, decision, reasons, cast_at."""
    with catalog.connect() as con:
        return con.sql(
            "SELECT image_id, reviewer, decision, coalesce(reasons, []::VARCHAR[]) AS reasons, "
            "cast_at FROM review_votes WHERE undone_at IS NULL ORDER BY image_id, cast_at"
        ).to_arrow_table()


def state_counts(catalog: Catalog, stage_input: str | None) -> dict[str, int]:
    """Queue images per state: unvoted, one_vote, accepted, rejected, needs_adjudication."""
    queue, params = _queue_sql(stage_input)
    with catalog.connect() as con:
        rows = con.execute(
            f"WITH s AS ({_SUMMARY_SQL}), q AS ({queue}) "
            "SELECT CASE WHEN s.image_id IS NULL THEN 'unvoted' WHEN s.status = 'pending' "
            "THEN 'one_vote' ELSE s.status END, count(*) FROM q "
            "LEFT JOIN s ON s.image_id = q.image_id GROUP BY 1",
            params,
        ).fetchall()
    counts = dict.fromkeys(("unvoted", "one_vote", "accepted", "rejected", "needs_adjudication"), 0)
    counts.update(dict(rows))
    return counts


def reviewer_progress(
    catalog: Catalog, reviewer: str, stage_input: str | None, now: datetime | None = None
) -> dict[str, int]:
    """The reviewer's own votes (all time, 24 h) and queue images still open to them."""
    with catalog.connect() as con:
        return _progress(con, reviewer, stage_input, now or utcnow())


def _progress(con, reviewer: str, stage_input: str | None, now: datetime) -> dict[str, int]:
    queue, params = _queue_sql(stage_input)
    total, recent = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE cast_at > ?) FROM review_votes "
        "WHERE reviewer = ? AND undone_at IS NULL",
        [now - timedelta(hours=24), reviewer],
    ).fetchone()
    left = con.execute(
        f"""WITH q AS ({queue}),
        v AS (SELECT image_id, count(*) AS n, bool_or(reviewer = ?) AS mine
              FROM review_votes WHERE undone_at IS NULL GROUP BY image_id)
        SELECT count(*) FROM q LEFT JOIN v ON v.image_id = q.image_id
        WHERE NOT coalesce(v.mine, false) AND coalesce(v.n, 0) < {VOTES_NEEDED}""",
        [*params, reviewer],
    ).fetchone()[0]
    return {"votes": total, "votes_24h": recent, "left": left}


def reviewer_stats(catalog: Catalog) -> list[dict[str, Any]]:
    """Per reviewer: votes, accepts, rejects and votes per hour over their active span."""
    with catalog.connect() as con:
        rows = con.execute(
            "SELECT reviewer, count(*), count(*) FILTER (WHERE decision = 'accept'), "
            "count(*) FILTER (WHERE decision = 'reject'), "
            "epoch(max(cast_at)) - epoch(min(cast_at)) FROM review_votes "
            "WHERE undone_at IS NULL GROUP BY reviewer ORDER BY reviewer"
        ).fetchall()
    return [
        {
            "reviewer": r,
            "votes": n,
            "accepts": a,
            "rejects": j,
            "votes_per_hour": round(n / (span / 3600), 1) if span and n > 1 else None,
        }
        for r, n, a, j, span in rows
    ]


def _pairs(con) -> list[tuple]:
    return con.execute(
        "SELECT image_id, list(decision ORDER BY cast_at, vote_id), "
        "list(coalesce(reasons, []::VARCHAR[]) ORDER BY cast_at, vote_id), "
        "list(reviewer ORDER BY cast_at, vote_id) FROM review_votes WHERE undone_at IS NULL "
        "GROUP BY image_id HAVING count(*) = 2 ORDER BY image_id"
    ).fetchall()


def cohen_kappa(first: list[bool], second: list[bool]) -> float | None:
    """Cohen's kappa for two binary ratings of the same items (first vs second vote)."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p1, p2 = sum(first) / n, sum(second) / n
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else None
    return (observed - expected) / (1 - expected)


def agreement(catalog: Catalog) -> dict[str, Any]:
    """Cohen's kappa between first and second votes, overall and per reason tag."""
    with catalog.connect() as con:
        pairs = _pairs(con)
    overall = cohen_kappa(
        [p[1][0] == "accept" for p in pairs], [p[1][1] == "accept" for p in pairs]
    )
    per_reason = {
        tag: cohen_kappa([tag in p[2][0] for p in pairs], [tag in p[2][1] for p in pairs])
        for tag in REASON_TAGS
    }
    return {"pairs": len(pairs), "kappa": overall, "per_reason": per_reason}


def disagreements(catalog: Catalog) -> list[dict[str, Any]]:
    """Images whose two votes split, with each vote and any admin decision."""
    with catalog.connect() as con:
        decided = dict(
            con.execute(
                "SELECT image_id, decision || ' by ' || decided_by FROM review_decisions"
            ).fetchall()
        )
        pairs = _pairs(con)
    return [
        {
            "image_id": image_id,
            "votes": [
                {"reviewer": r, "decision": d, "reasons": list(rs)}
                for r, d, rs in zip(who, dec, reasons, strict=True)
            ],
            "decision": decided.get(image_id),
        }
        for image_id, dec, reasons, who in pairs
        if dec[0] != dec[1]
    ]


def adjudication_queue(catalog: Catalog, admin: str | None = None) -> list[dict[str, Any]]:
    """Split images no admin has decided; with `admin`, only those that admin did not vote on."""
    return [
        d
        for d in disagreements(catalog)
        if d["decision"] is None
        and (admin is None or admin not in {v["reviewer"] for v in d["votes"]})
    ]


def vote_details(catalog: Catalog, image_id: str) -> list[dict[str, Any]]:
    """An image's current votes with reasons and comments (for admins)."""
    with catalog.connect() as con:
        rows = _current_votes(con, image_id)
    return [
        {"reviewer": r, "decision": d, "reasons": list(rs or []), "comment": c}
        for r, d, rs, c in rows
    ]


def audit_log(catalog: Catalog, limit: int = 200) -> list[dict[str, Any]]:
    with catalog.connect() as con:
        cur = con.execute(
            "SELECT event_id, event_at, actor, action, image_id, detail FROM review_audit "
            "ORDER BY event_id DESC LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def rule_violations(catalog: Catalog) -> list[str]:
    """Every way the catalog breaks the two-reviewer rule (empty when it holds)."""
    checks = {
        "more than two current votes": "SELECT image_id FROM review_votes WHERE undone_at IS NULL "
        "GROUP BY image_id HAVING count(*) > 2",
        "two current votes by one reviewer": "SELECT image_id FROM review_votes "
        "WHERE undone_at IS NULL GROUP BY image_id, reviewer HAVING count(*) > 1",
        "review pass without two accepts or an admin accept": f"""
            SELECT o.image_id FROM stage_outcomes o WHERE o.stage = '{STAGE}' AND o.status = 'pass'
            AND NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.image_id = o.image_id
                            AND d.decision = 'accept')
            AND (SELECT count(DISTINCT reviewer) FROM review_votes v WHERE v.image_id = o.image_id
                 AND v.undone_at IS NULL AND v.decision = 'accept') < 2""",
        "review reject without two rejects or an admin reject": f"""
            SELECT o.image_id FROM stage_outcomes o WHERE o.stage = '{STAGE}'
            AND o.status = 'reject'
            AND NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.image_id = o.image_id
                            AND d.decision = 'reject')
            AND (SELECT count(DISTINCT reviewer) FROM review_votes v WHERE v.image_id = o.image_id
                 AND v.undone_at IS NULL AND v.decision = 'reject') < 2""",
        "adjudicated by one of the voters": "SELECT d.image_id FROM review_decisions d "
        "JOIN review_votes v ON v.image_id = d.image_id AND v.reviewer = d.decided_by "
        "AND v.undone_at IS NULL",
        "vote or decision missing from the audit log": "SELECT image_id FROM review_votes v "
        "WHERE NOT EXISTS (SELECT 1 FROM review_audit a WHERE a.action = 'vote' "
        "AND a.image_id = v.image_id AND a.actor = v.reviewer)",
    }
    found = []
    with catalog.connect() as con:
        for label, sql in checks.items():
            for (image_id,) in con.execute(sql).fetchall():
                found.append(f"{label}: {image_id}")
    return found


def image_info(catalog: Catalog, image_id: str) -> dict[str, Any] | None:
    """Path and size of an image, plus its latest score per metric."""
    with catalog.connect() as con:
        return _image_info(con, image_id)


def _image_info(con, image_id: str) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT ip.path, i.width, i.height FROM images i JOIN image_paths ip USING (image_id) "
        "WHERE i.image_id = ?",
        [image_id],
    ).fetchone()
    if row is None:
        return None
    scores = con.execute(
        "SELECT metric, arg_max(value, created_at) FROM scores WHERE image_id = ? "
        "GROUP BY metric ORDER BY metric",
        [image_id],
    ).fetchall()
    return {
        "image_id": image_id,
        "path": row[0],
        "width": row[1],
        "height": row[2],
        "scores": dict(scores),
    }
