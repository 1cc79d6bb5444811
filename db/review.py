"""The two-reviewer rule: leases, votes, skips, undo, adjudication, file errors, the audit log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db import review_queue
from db.accounts import utcnow
from db.catalog import Catalog
from db.errors import CatalogError
from db.review_queue import VOTES_NEEDED, Lease, writing

# Dashboard reads live in db.review_stats; other packages import these names from here.
from db.review_stats import (  # noqa: F401
    agreement,
    cohen_kappa,
    current_votes,
    reviewer_stats,
    state_counts,
    vote_summary,
)
from db.scores import latest_columns

STAGE = "review"
DECISIONS = ("accept", "reject")
SKIP = "skip"  # "unsure": recorded, comes back to the reviewer last, enough of them go to an admin
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
# Outcomes of an image whose file cannot be shown (a decode guard may add its own reason).
FILE_REASONS = ("file_missing", "file_unreadable")
HISTORY = 20  # votes a reviewer sees in their history
MAX_TEXT = 2000  # characters of a comment or note


class ReviewError(CatalogError):
    """A vote, undo or decision the rule forbids; the message says why in one line."""


class NotNeeded(ReviewError):
    """A vote on an image that has the votes it needs or is decided. Its message is for logs and
    admins: a reviewer is told only that the vote was not needed (blindness)."""


@dataclass(frozen=True)
class Rules:
    """The [review] settings the rule and the queue need."""

    lease_s: float = 300.0
    ahead: int = 0  # images leased beyond the one on screen (the browser prefetches them)
    top_up: int = 0  # leased on top when a slot frees, so most votes skip the search
    undo_window_s: float = 300.0
    reject_needs_reason: bool = False
    skips_to_admin: int = 2


@dataclass(frozen=True)
class Vote:
    image_id: str
    decision: str  # accept | reject | skip
    reasons: tuple[str, ...] = ()
    comment: str | None = None
    seen_ms: int | None = None  # how long the image was on the reviewer's screen


# ---- leases ---------------------------------------------------------------------------------


def next_images(
    catalog: Catalog,
    reviewer: str,
    stage_input: str | None,
    rules: Rules,
    vote: Vote | None = None,
    run_id: int | None = None,
    now: datetime | None = None,
) -> list[Lease]:
    """Cast `vote` (if any), then top the reviewer's leases up to 1 + rules.ahead images, in one
    transaction; returns the leased images in the order they are shown. A vote the rule refuses
    raises ReviewError and changes nothing."""
    with writing(catalog) as con:
        now = now or utcnow()  # taken inside the lock: votes keep commit order
        if vote is not None:
            _apply(con, vote, reviewer, rules, run_id, now)  # checks the account too
        else:
            _require_active(con, reviewer)
        return review_queue.lease(con, reviewer, stage_input, rules.lease_s, rules.ahead + 1,
                                  now, rules.skips_to_admin, rules.top_up)


def claim_next(
    catalog: Catalog,
    reviewer: str,
    stage_input: str | None,
    lease_s: float,
    now: datetime | None = None,
) -> str | None:
    """The reviewer's next image, leased to them; images with one vote first; None when done."""
    leases = next_images(catalog, reviewer, stage_input, Rules(lease_s=lease_s), now=now)
    return leases[0].image_id if leases else None


def upcoming_images(catalog: Catalog, stage_input: str | None, limit: int) -> list[tuple[str, str]]:
    """(image_id, path) of the next queue images nobody has voted on or leased, in hand-out
    order: the ones whose previews are worth building before a click."""
    with writing(catalog) as con:
        review_queue.ensure(con, stage_input, Rules.skips_to_admin, utcnow())
        return review_queue.upcoming(con, stage_input, limit)


def sync_queue(
    catalog: Catalog, stage_input: str | None, skips_to_admin: int = 2, force: bool = False
) -> dict[str, int] | None:
    """Bring the materialised queue in line with its input stage if that changed (or `force`)."""
    with writing(catalog) as con:
        if force or review_queue.needs_sync(con, stage_input):
            return review_queue.sync(con, stage_input, skips_to_admin, utcnow())
    return None


def release(catalog: Catalog, reviewer: str) -> None:
    """Drop the reviewer's leases (on logout), so the images go back to the queue at once."""
    with writing(catalog) as con:
        review_queue.release(con, reviewer)


# ---- votes ----------------------------------------------------------------------------------


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
    """Store one vote under the rule; returns the image's status afterwards (never shown to a
    reviewer: it would tell them the other vote)."""
    vote = Vote(image_id, decision, tuple(reasons or ()), comment)
    with writing(catalog) as con:
        return _cast(con, vote, reviewer, run_id, now or utcnow(), require_reason=False)


def _apply(con, vote: Vote, reviewer: str, rules: Rules, run_id: int | None, now: datetime) -> None:
    if vote.decision == SKIP:
        _skip(con, vote, reviewer, rules.skips_to_admin, now)
    else:
        _cast(con, vote, reviewer, run_id, now, rules.reject_needs_reason)


def _check_text(text: str | None, what: str) -> str | None:
    if text is not None and len(text) > MAX_TEXT:
        raise ReviewError(f"{what} is longer than {MAX_TEXT} characters")
    return text.strip() or None if text else None


def _cast(
    con, vote: Vote, reviewer: str, run_id: int | None, now: datetime, require_reason: bool
) -> str:
    image_id, decision, reasons = vote.image_id, vote.decision, list(vote.reasons)
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be accept or reject, got {decision!r}")
    unknown = sorted(set(reasons) - set(REASON_TAGS))
    if unknown:
        raise ReviewError(f"unknown reason tag(s) {', '.join(unknown)}")
    if decision == "reject" and require_reason and not reasons:
        raise ReviewError("a reject needs at least one reason (keys 1-9)")
    comment = _check_text(vote.comment, "the comment")
    # Every precondition and the current votes in one statement (each round trip costs a
    # millisecond or more on a busy machine, and this runs under the write lock that all
    # sessions share); checked in the same order.
    active, exists, decided, holds, others, votes = con.execute(
        "SELECT (SELECT NOT disabled FROM reviewers WHERE name = $r), "
        "EXISTS (SELECT 1 FROM images WHERE image_id = $i), "
        "EXISTS (SELECT 1 FROM review_decisions WHERE image_id = $i), "
        "EXISTS (SELECT 1 FROM review_leases WHERE image_id = $i AND reviewer = $r "
        "AND expires_at > $now), "
        "(SELECT count(*) FROM review_leases WHERE image_id = $i AND reviewer <> $r "
        "AND expires_at > $now), "
        "(SELECT list([reviewer, decision] ORDER BY cast_at, vote_id) FROM review_votes "
        "WHERE image_id = $i AND undone_at IS NULL)",
        {"r": reviewer, "i": image_id, "now": now},
    ).fetchone()
    if not active:
        raise ReviewError(f"{reviewer!r} is not an active reviewer")
    if not exists:
        raise ReviewError(f"no image {image_id} in the catalog")
    votes = [tuple(v) for v in votes or []]
    if any(v[0] == reviewer for v in votes):
        raise ReviewError(f"{reviewer} has already voted on image {image_id[:12]}")
    if decided:
        raise NotNeeded(f"image {image_id[:12]} is already decided")
    if len(votes) >= VOTES_NEEDED or (not holds and len(votes) + others >= VOTES_NEEDED):
        raise NotNeeded(f"image {image_id[:12]} already has the votes it needs")
    con.execute(
        "INSERT INTO review_votes (image_id, reviewer, decision, reasons, comment, cast_at, "
        "seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [image_id, reviewer, decision, reasons, comment, now, vote.seen_ms],
    )
    con.execute(
        "DELETE FROM review_leases WHERE image_id = ? AND reviewer = ?", [image_id, reviewer]
    )
    _audit(con, now, reviewer, "vote", image_id,
           {"decision": decision, "reasons": reasons, "comment": comment})
    votes = [*votes, (reviewer, decision)]
    review_queue.refresh(con, image_id, votes, decided=False)
    if len(votes) < VOTES_NEEDED:
        return "pending"
    return _settle(con, image_id, run_id, _current_votes(con, image_id))


def _skip(con, vote: Vote, reviewer: str, skips_to_admin: int, now: datetime) -> None:
    image_id = vote.image_id
    comment = _check_text(vote.comment, "the comment")
    _require_active(con, reviewer)
    if not con.execute("SELECT 1 FROM images WHERE image_id = ?", [image_id]).fetchone():
        raise ReviewError(f"no image {image_id} in the catalog")
    if con.execute("SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]).fetchone():
        raise NotNeeded(f"image {image_id[:12]} is already decided")
    if any(v[0] == reviewer for v in _current_votes(con, image_id)):
        raise ReviewError(f"{reviewer} has already voted on image {image_id[:12]}")
    again = con.execute(
        "SELECT 1 FROM review_skips WHERE image_id = ? AND reviewer = ?", [image_id, reviewer]
    ).fetchone()
    con.execute(
        "INSERT INTO review_skips (image_id, reviewer, comment, skipped_at) VALUES (?, ?, ?, ?)",
        [image_id, reviewer, comment, now],
    )
    _audit(con, now, reviewer, "skip", image_id, {"comment": comment})
    review_queue.release(con, reviewer, image_id)
    if not again and review_queue.add_skip(con, image_id) >= skips_to_admin:
        decided = con.execute(
            "SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]
        ).fetchone()
        if not decided and len(_current_votes(con, image_id)) < VOTES_NEEDED:
            review_queue.set_state(con, image_id, "unsure")  # off to an admin
            con.execute("DELETE FROM review_leases WHERE image_id = ?", [image_id])


def undo_vote(
    catalog: Catalog,
    reviewer: str,
    window_s: float,
    lease_s: float,
    image_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """Withdraw the reviewer's vote on `image_id` (else their latest vote) if younger than
    `window_s` and not adjudicated; the image is leased back to them, first in line, to vote
    again (change-my-vote). Returns its image id."""
    with writing(catalog) as con:
        now = now or utcnow()  # taken inside the lock: votes keep commit order
        _require_active(con, reviewer)
        row = con.execute(
            "SELECT vote_id, image_id, cast_at FROM review_votes WHERE reviewer = $r "
            "AND undone_at IS NULL AND ($i IS NULL OR image_id = $i) "
            "ORDER BY cast_at DESC, vote_id DESC LIMIT 1",
            {"r": reviewer, "i": image_id},
        ).fetchone()
        if row is None:
            raise ReviewError("you have no vote to undo" if image_id is None
                              else "you have no vote on that image to take back")
        vote_id, image_id, cast_at = row
        if (now - cast_at).total_seconds() > window_s:
            raise ReviewError(
                f"that vote is older than {window_s:g} s and can no longer be undone"
            )
        if con.execute("SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]).fetchone():
            raise ReviewError("an admin has already decided that image; it can no longer be undone")
        con.execute("UPDATE review_votes SET undone_at = ? WHERE vote_id = ?", [now, vote_id])
        # The consensus this vote completed (if any) no longer holds.
        con.execute(
            "DELETE FROM stage_outcomes WHERE image_id = ? AND stage = ?", [image_id, STAGE]
        )
        votes = _current_votes(con, image_id)
        review_queue.refresh(con, image_id, [(v[0], v[1]) for v in votes], decided=False)
        review_queue.lease_again(con, reviewer, image_id, lease_s, now)
        _audit(con, now, reviewer, "undo", image_id, {"vote_id": vote_id})
        return image_id


def undo_last_vote(
    catalog: Catalog, reviewer: str, window_s: float, lease_s: float, now: datetime | None = None
) -> str:
    """Withdraw the reviewer's latest vote if younger than `window_s`; returns its image id."""
    return undo_vote(catalog, reviewer, window_s, lease_s, None, now)


def _settle(con, image_id: str, run_id: int | None, votes: list[tuple]) -> str:
    if len(votes) < VOTES_NEEDED:
        return "pending"
    decisions = {v[1] for v in votes}
    if decisions == {"accept"}:
        _write_outcome(con, image_id, "pass", "accepted",
                       "accepted by " + ", ".join(v[0] for v in votes), run_id)
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


# ---- adjudication ---------------------------------------------------------------------------


def adjudicate(
    catalog: Catalog,
    image_id: str,
    admin: str,
    decision: str,
    note: str | None = None,
    run_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """An admin who never voted on (nor skipped) a split or unsure image decides it. Undone votes
    count: voting, undoing and then adjudicating would let one person meet the rule alone."""
    if decision not in DECISIONS:
        raise ReviewError(f"decision must be accept or reject, got {decision!r}")
    note = _check_text(note, "the note")
    with writing(catalog) as con:
        now = now or utcnow()  # taken inside the lock: votes keep commit order
        role = _require_active(con, admin)
        if role != "admin":
            raise ReviewError(f"{admin} is not an admin; only admins adjudicate")
        if _touched(con, image_id, admin):
            raise ReviewError(
                f"{admin} voted on image {image_id[:12]} (an undone vote counts) "
                "and cannot adjudicate it"
            )
        if con.execute("SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]).fetchone():
            raise ReviewError(f"image {image_id[:12]} is already decided")
        votes = _current_votes(con, image_id)
        kind = _waiting_kind(con, image_id, votes)
        if kind is None:
            raise ReviewError(f"image {image_id[:12]} is not waiting for adjudication")
        con.execute(
            "INSERT INTO review_decisions (image_id, decision, decided_by, note, decided_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [image_id, decision, admin, note, now],
        )
        _audit(con, now, admin, "adjudicate", image_id, {"decision": decision, "note": note})
        voters = ", ".join(f"{v[0]} {v[1]}" for v in votes) or "no votes"
        _write_outcome(
            con,
            image_id,
            "pass" if decision == "accept" else "reject",
            "adjudicated_accept" if decision == "accept" else "adjudicated_reject",
            f"{kind} ({voters}); decided by {admin}" + (f": {note}" if note else ""),
            run_id,
        )
        review_queue.refresh(con, image_id, [(v[0], v[1]) for v in votes], decided=True)


def undo_decision(
    catalog: Catalog, admin: str, window_s: float, now: datetime | None = None
) -> str:
    """Take back the admin's latest decision if younger than `window_s`; the image waits for
    adjudication again. Returns its image id."""
    with writing(catalog) as con:
        now = now or utcnow()  # taken inside the lock: votes keep commit order
        if _require_active(con, admin) != "admin":
            raise ReviewError(f"{admin} is not an admin")
        row = con.execute(
            "SELECT image_id, decision, decided_at FROM review_decisions WHERE decided_by = ? "
            "ORDER BY decided_at DESC LIMIT 1",
            [admin],
        ).fetchone()
        if row is None:
            raise ReviewError("you have no decision to undo")
        image_id, decision, decided_at = row
        if (now - decided_at).total_seconds() > window_s:
            raise ReviewError(
                f"your last decision is older than {window_s:g} s and can no longer be undone"
            )
        # The audit log keeps the decision; the decisions table holds the ones that stand.
        con.execute("DELETE FROM review_decisions WHERE image_id = ?", [image_id])
        con.execute(
            "DELETE FROM stage_outcomes WHERE image_id = ? AND stage = ?", [image_id, STAGE]
        )
        votes = _current_votes(con, image_id)
        if len(votes) >= VOTES_NEEDED:
            review_queue.refresh(con, image_id, [(v[0], v[1]) for v in votes], decided=False)
        else:
            review_queue.set_state(con, image_id, "unsure")
        _audit(con, now, admin, "undo_decision", image_id, {"decision": decision})
        return image_id


def _touched(con, image_id: str, name: str) -> bool:
    """Whether `name` ever voted on the image (undone votes included) or skipped it."""
    return bool(
        con.execute(
            "SELECT EXISTS (SELECT 1 FROM review_votes WHERE image_id = $i AND reviewer = $n) "
            "OR EXISTS (SELECT 1 FROM review_skips WHERE image_id = $i AND reviewer = $n)",
            {"i": image_id, "n": name},
        ).fetchone()[0]
    )


def _waiting_kind(con, image_id: str, votes: list[tuple]) -> str | None:
    if len(votes) >= VOTES_NEEDED:
        return "split" if len({v[1] for v in votes}) > 1 else None
    unsure = con.execute(
        "SELECT 1 FROM review_queue WHERE image_id = ? AND state = 'unsure'", [image_id]
    ).fetchone()
    return "unsure" if unsure else None


def adjudication_queue(catalog: Catalog, admin: str | None = None) -> list[dict[str, Any]]:
    """Split images and images enough reviewers were unsure about, not yet decided, oldest
    first; with `admin`, only those that admin never voted on or skipped."""
    with catalog.connect() as con:
        rows = con.execute(
            """
            WITH split AS (
                SELECT image_id, 'split' AS kind, max(cast_at) AS since FROM review_votes
                WHERE undone_at IS NULL GROUP BY image_id
                HAVING count(*) >= 2 AND count(DISTINCT decision) > 1),
            unsure AS (
                SELECT DISTINCT q.image_id, 'unsure' AS kind,
                       (SELECT max(skipped_at) FROM review_skips s
                        WHERE s.image_id = q.image_id) AS since
                FROM review_queue q WHERE q.state = 'unsure'),
            w AS (SELECT * FROM split UNION ALL SELECT * FROM unsure)
            SELECT w.image_id, w.kind FROM w
            WHERE w.image_id NOT IN (SELECT image_id FROM review_decisions)
              AND ($a IS NULL OR (
                  w.image_id NOT IN (SELECT image_id FROM review_votes WHERE reviewer = $a)
                  AND w.image_id NOT IN (SELECT image_id FROM review_skips WHERE reviewer = $a)))
            ORDER BY w.since, w.image_id
            """,
            {"a": admin},
        ).fetchall()
        return [_case(con, image_id, kind) for image_id, kind in rows]


def _case(con, image_id: str, kind: str) -> dict[str, Any]:
    """What an admin sees to decide an image: its votes with reasons and comments, the skips."""
    votes = [
        {"reviewer": r, "decision": d, "reasons": list(rs or []), "comment": c}
        for r, d, rs, c in _current_votes(con, image_id)
    ]
    skips = [
        {"reviewer": r, "comment": c}
        for r, c in con.execute(
            "SELECT reviewer, comment FROM review_skips WHERE image_id = ? ORDER BY skipped_at",
            [image_id],
        ).fetchall()
    ]
    return {"image_id": image_id, "kind": kind, "votes": votes, "skips": skips}


# ---- files that cannot be shown -------------------------------------------------------------


def record_file_error(
    catalog: Catalog,
    image_id: str,
    reason: str,
    detail: str,
    actor: str,
    run_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """An image whose file cannot be opened leaves the queue with a `review` error outcome
    (reason file_missing / file_unreadable / a decode guard's own), every lease on it ends, and
    the admins' list shows it. An image already decided keeps its outcome. Returns whether it
    was recorded now."""
    with writing(catalog) as con:
        now = now or utcnow()  # taken inside the lock: votes keep commit order
        states = {s for (s,) in con.execute(
            "SELECT state FROM review_queue WHERE image_id = ?", [image_id]).fetchall()}
        decided = con.execute(
            "SELECT 1 FROM review_decisions WHERE image_id = ?", [image_id]
        ).fetchone()
        if decided or not states or states <= {"done", "error"}:
            return False
        review_queue.set_state(con, image_id, "error")
        con.execute("DELETE FROM review_leases WHERE image_id = ?", [image_id])
        _write_outcome(con, image_id, "error", reason, detail[:MAX_TEXT], run_id)
        _audit(con, now, actor, "file_error", image_id, {"reason": reason, "detail": detail})
        return True


def requeue(catalog: Catalog, image_id: str, admin: str, now: datetime | None = None) -> None:
    """Put an image with a file error back in the queue (an admin fixed the file)."""
    with writing(catalog) as con:
        now = now or utcnow()  # taken inside the lock: votes keep commit order
        if _require_active(con, admin) != "admin":
            raise ReviewError(f"{admin} is not an admin")
        found = con.execute(
            "SELECT 1 FROM review_queue WHERE image_id = ? AND state = 'error'", [image_id]
        ).fetchone()
        if not found:
            raise ReviewError(f"image {image_id[:12]} has no file error to clear")
        con.execute(
            "DELETE FROM stage_outcomes WHERE image_id = ? AND stage = ? AND status = 'error'",
            [image_id, STAGE],
        )
        review_queue.set_state(con, image_id, "open")
        votes = _current_votes(con, image_id)
        review_queue.refresh(con, image_id, [(v[0], v[1]) for v in votes], decided=False)
        _audit(con, now, admin, "requeue", image_id, {})


def file_errors(catalog: Catalog) -> list[dict[str, Any]]:
    """Review images whose file could not be shown: id, path, reason, detail, when."""
    with catalog.connect() as con:
        cur = con.execute(
            "SELECT o.image_id, p.path, o.reason, o.detail, o.decided_at FROM stage_outcomes o "
            "LEFT JOIN image_paths p USING (image_id) "
            "WHERE o.stage = ? AND o.status = 'error' ORDER BY o.decided_at DESC",
            [STAGE],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# ---- what a reviewer sees of their own work -------------------------------------------------


def history(
    catalog: Catalog, reviewer: str, window_s: float, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The reviewer's latest votes and skips, newest first; `can_change` inside the undo window
    while no admin decided the image. Only their own: nothing about anyone else's vote."""
    now = now or utcnow()
    with catalog.connect() as con:
        rows = con.execute(
            """
            SELECT * FROM (
                SELECT v.vote_id, v.image_id, v.decision, coalesce(v.reasons, []::VARCHAR[]),
                       v.comment, v.cast_at AS happened, v.undone_at IS NOT NULL AS undone,
                       v.undone_at IS NULL AND epoch(?::TIMESTAMP) - epoch(v.cast_at) <= ?
                       AND v.image_id NOT IN (SELECT image_id FROM review_decisions) AS can_change
                FROM review_votes v WHERE v.reviewer = ?
                UNION ALL
                SELECT NULL, image_id, 'skip', []::VARCHAR[], comment, skipped_at, false, false
                FROM review_skips WHERE reviewer = ?)
            ORDER BY happened DESC LIMIT ?
            """,
            [now, window_s, reviewer, reviewer, HISTORY],
        ).fetchall()
    keys = ("vote_id", "image_id", "decision", "reasons", "comment", "at", "undone", "can_change")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def viewable_image(
    catalog: Catalog, image_id: str, name: str, admin: bool
) -> dict[str, Any] | None:
    """Path (with its size at ingest), size and format of an image if this account may load it:
    a reviewer only an image they hold or voted on, an admin any image. None otherwise."""
    with catalog.connect() as con:
        return viewable(con, image_id, name, admin)


def image_file(catalog: Catalog, image_id: str) -> dict[str, Any] | None:
    """Path (with its size at ingest), size and format of an image; None if there is none."""
    with catalog.connect() as con:
        return viewable(con, image_id, "", admin=True)


def viewable(con, image_id: str, name: str, admin: bool) -> dict[str, Any] | None:
    """`viewable_image` on an open connection (the API checks the session on the same one)."""
    # The image's first path (what the image_paths view picks), read through the paths index.
    row = con.execute(
        "SELECT p.path, p.size, i.width, i.height, i.format FROM images i "
        "LEFT JOIN paths p ON p.image_id = i.image_id "
        "WHERE i.image_id = $i AND ($admin OR "
        "EXISTS (SELECT 1 FROM review_leases WHERE image_id = $i AND reviewer = $n) OR "
        "EXISTS (SELECT 1 FROM review_votes WHERE image_id = $i AND reviewer = $n)) "
        "ORDER BY p.path LIMIT 1",
        {"i": image_id, "n": name, "admin": admin},
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("path", "bytes", "width", "height", "format"), row, strict=True))


def image_scores(catalog: Catalog, image_id: str) -> dict[str, float | None]:
    """The image's latest score per metric (shown only when [review] show_scores is on)."""
    with catalog.connect() as con:
        column = latest_columns(con)
        row = con.execute(f"SELECT {', '.join(column.values()) or 'NULL'} FROM scores_latest "
                          "WHERE image_id = ?", [image_id]).fetchone()
    return {m: v for m, v in zip(column, row or (), strict=False) if v is not None}


def vote_details(catalog: Catalog, image_id: str) -> list[dict[str, Any]]:
    """An image's current votes with reasons and comments (for admins)."""
    with catalog.connect() as con:
        rows = _current_votes(con, image_id)
    return [
        {"reviewer": r, "decision": d, "reasons": list(rs or []), "comment": c}
        for r, d, rs, c in rows
    ]


# ---- shared pieces --------------------------------------------------------------------------


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
        # Undone votes count: vote, undo, adjudicate would be one person meeting the rule alone.
        "adjudicated by someone who voted on it": "SELECT DISTINCT d.image_id "
        "FROM review_decisions d JOIN review_votes v ON v.image_id = d.image_id "
        "AND v.reviewer = d.decided_by",
        "vote or decision missing from the audit log": "SELECT image_id FROM review_votes v "
        "WHERE NOT EXISTS (SELECT 1 FROM review_audit a WHERE a.action = 'vote' "
        "AND a.image_id = v.image_id AND a.actor = v.reviewer)",
        "queue row disagrees with the votes": """
            WITH v AS (SELECT image_id, list(reviewer ORDER BY cast_at, vote_id) AS who
                       FROM review_votes WHERE undone_at IS NULL GROUP BY image_id)
            SELECT DISTINCT q.image_id FROM review_queue q LEFT JOIN v USING (image_id)
            WHERE q.voter_a IS DISTINCT FROM v.who[1] OR q.voter_b IS DISTINCT FROM v.who[2]
               OR (q.state = 'open' AND len(v.who) >= 2)
               OR (q.state IN ('split', 'done') AND coalesce(len(v.who), 0) < 2
                   AND q.image_id NOT IN (SELECT image_id FROM review_decisions))""",
    }
    found = []
    with catalog.connect() as con:
        for label, sql in checks.items():
            for (image_id,) in con.execute(sql).fetchall():
                found.append(f"{label}: {image_id}")
    return found
