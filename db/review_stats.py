"""Read side of the review: vote summaries, queue states, progress and pace, agreement, audit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from db.accounts import utcnow
from db.catalog import Catalog
from db.review_queue import queue_name

KAPPA_MIN_PAIRS = 20  # below this many pairs a kappa is shown with a warning
ACTIVE_GAP_S = 600.0  # a pause longer than this between two votes is a break, not work
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


def _source_sql(stage_input: str | None) -> tuple[str, list]:
    if stage_input is None:
        return "SELECT image_id FROM images", []
    return "SELECT image_id FROM stage_outcomes WHERE stage = ? AND status = 'pass'", [stage_input]


def vote_summary(catalog: Catalog) -> pa.Table:
    """Per voted image: accepts, rejects, reviewers, decided_by (consensus|admin), status."""
    with catalog.connect() as con:
        return con.sql(_SUMMARY_SQL).to_arrow_table()


def current_votes(catalog: Catalog) -> pa.Table:
    """Every vote not undone: image_id, reviewer, decision, reasons, comment, cast_at."""
    with catalog.connect() as con:
        return con.sql(
            "SELECT image_id, reviewer, decision, coalesce(reasons, []::VARCHAR[]) AS reasons, "
            "comment, cast_at FROM review_votes WHERE undone_at IS NULL "
            "ORDER BY image_id, cast_at"
        ).to_arrow_table()


STATES = ("unvoted", "one_vote", "accepted", "rejected", "needs_adjudication", "unsure",
          "file_error")


def state_counts(catalog: Catalog, stage_input: str | None) -> dict[str, int]:
    """Queue images per state: unvoted, one_vote, accepted, rejected, needs_adjudication
    (split votes), unsure (skipped by enough reviewers), file_error."""
    source, params = _source_sql(stage_input)
    with catalog.connect() as con:
        rows = con.execute(
            f"""WITH s AS ({_SUMMARY_SQL}), q AS ({source}),
            u AS (SELECT DISTINCT image_id FROM review_queue WHERE state = 'unsure'),
            e AS (SELECT DISTINCT image_id FROM stage_outcomes
                  WHERE stage = 'review' AND status = 'error')
            SELECT CASE WHEN e.image_id IS NOT NULL THEN 'file_error'
                        WHEN s.status IN ('accepted', 'rejected') THEN s.status
                        WHEN u.image_id IS NOT NULL THEN 'unsure'
                        WHEN s.image_id IS NULL THEN 'unvoted'
                        WHEN s.status = 'pending' THEN 'one_vote' ELSE s.status END, count(*)
            FROM q LEFT JOIN s ON s.image_id = q.image_id LEFT JOIN u ON u.image_id = q.image_id
            LEFT JOIN e ON e.image_id = q.image_id GROUP BY 1""",
            params,
        ).fetchall()
    counts = dict.fromkeys(STATES, 0)
    counts.update(dict(rows))
    return counts


def reviewer_progress(
    catalog: Catalog, reviewer: str, stage_input: str | None, now: datetime | None = None
) -> dict[str, int]:
    """The reviewer's own votes (all time, 24 h) and queue images still open to them."""
    now = now or utcnow()
    with catalog.connect() as con:
        total, recent = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE cast_at > ?) FROM review_votes "
            "WHERE reviewer = ? AND undone_at IS NULL",
            [now - timedelta(hours=24), reviewer],
        ).fetchone()
        left = con.execute(
            "SELECT count(*) FROM review_queue WHERE queue = ? AND state = 'open' "
            "AND coalesce(voter_a <> ?, true) AND coalesce(voter_b <> ?, true)",
            [queue_name(stage_input), reviewer, reviewer],
        ).fetchone()[0]
    return {"votes": total, "votes_24h": recent, "left": left}


def _active_hours(times: list[datetime]) -> float:
    """Time spent voting: the gaps between consecutive votes, breaks left out."""
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    return sum(g for g in gaps if g <= ACTIVE_GAP_S) / 3600


def reviewer_stats(catalog: Catalog) -> list[dict[str, Any]]:
    """Per reviewer: votes, accepts, rejects, skips and votes per active hour (breaks left out)."""
    with catalog.connect() as con:
        rows = con.execute(
            "SELECT reviewer, list(cast_at ORDER BY cast_at), "
            "count(*) FILTER (WHERE decision = 'accept'), "
            "count(*) FILTER (WHERE decision = 'reject') FROM review_votes "
            "WHERE undone_at IS NULL GROUP BY reviewer ORDER BY reviewer"
        ).fetchall()
        skips = dict(con.execute(
            "SELECT reviewer, count(*) FROM review_skips GROUP BY reviewer").fetchall())
    out = []
    for name, times, accepts, rejects in rows:
        hours = _active_hours(times)
        out.append({
            "reviewer": name, "votes": len(times), "accepts": accepts, "rejects": rejects,
            "skips": skips.get(name, 0),
            "votes_per_hour": round(len(times) / hours, 1) if hours > 0 and len(times) > 1
            else None,
        })
    return out


def progress(catalog: Catalog, stage_input: str | None) -> dict[str, Any]:
    """The team's progress on the queue: votes cast and still needed, pace over the last hour,
    an ETA; and per reviewer the images still open to them with an ETA at their own pace."""
    queue = queue_name(stage_input)
    with catalog.connect() as con:
        needed, cast, waiting = con.execute(
            "SELECT coalesce(sum(CASE WHEN state = 'open' THEN 2 - (voter_a IS NOT NULL)::INT "
            "- (voter_b IS NOT NULL)::INT ELSE 0 END), 0), "
            "coalesce(sum((voter_a IS NOT NULL)::INT + (voter_b IS NOT NULL)::INT), 0), "
            "count(*) FILTER (WHERE state IN ('split', 'unsure')) "
            "FROM review_queue WHERE queue = ?",
            [queue],
        ).fetchone()
        last_hour = con.execute(
            "SELECT count(*) FROM review_votes WHERE cast_at > "
            "(SELECT max(cast_at) FROM review_votes) - INTERVAL 1 HOUR"
        ).fetchone()[0]
        open_images = con.execute(
            "SELECT count(*) FROM review_queue WHERE queue = ? AND state = 'open'", [queue]
        ).fetchone()[0]
        mine_open = dict(con.execute(
            "SELECT v.reviewer, count(*) FROM review_votes v JOIN review_queue q "
            "ON q.image_id = v.image_id AND q.queue = ? AND q.state = 'open' "
            "WHERE v.undone_at IS NULL GROUP BY v.reviewer",
            [queue],
        ).fetchall())
    stats = reviewer_stats(catalog)
    rate = last_hour or None  # the team's pace: votes in the last hour of voting
    team = {
        "votes_cast": cast, "votes_needed": needed, "waiting_for_admin": waiting,
        "fraction": cast / (cast + needed) if cast + needed else 1.0,
        "votes_last_hour": last_hour,
        "eta_hours": round(needed / rate, 2) if rate and needed else (0.0 if not needed else None),
    }
    people = []
    for s in stats:
        left = open_images - mine_open.get(s["reviewer"], 0)
        pace = s["votes_per_hour"]
        people.append({
            **s, "left": left,
            "fraction": s["votes"] / (s["votes"] + left) if s["votes"] + left else 1.0,
            "eta_hours": round(left / pace, 2) if pace else None,
        })
    return {"team": team, "reviewers": people}


def _pairs(con) -> list[tuple]:
    return con.execute(
        "SELECT image_id, list(decision ORDER BY cast_at, vote_id), "
        "list(coalesce(reasons, []::VARCHAR[]) ORDER BY cast_at, vote_id), "
        "list(reviewer ORDER BY cast_at, vote_id) FROM review_votes WHERE undone_at IS NULL "
        "GROUP BY image_id HAVING count(*) = 2 ORDER BY image_id"
    ).fetchall()


def cohen_kappa(first: list[bool], second: list[bool]) -> float | None:
    """Cohen's kappa for two binary ratings of the same items (first vs second vote); None
    when it is undefined (no items, or both raters constant)."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p1, p2 = sum(first) / n, sum(second) / n
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def agreement(catalog: Catalog) -> dict[str, Any]:
    """Cohen's kappa between first and second votes over the images with two votes, overall
    and per reason tag. A tag gets a kappa only where both the first and the second votes used
    it (else it is None: a tag nobody used agrees trivially); `reliable` is False below
    KAPPA_MIN_PAIRS pairs."""
    with catalog.connect() as con:
        pairs = _pairs(con)
    overall = cohen_kappa(
        [p[1][0] == "accept" for p in pairs], [p[1][1] == "accept" for p in pairs]
    )
    tags = sorted({t for p in pairs for rs in p[2] for t in rs})
    per_reason = {}
    for tag in tags:
        first, second = [tag in p[2][0] for p in pairs], [tag in p[2][1] for p in pairs]
        per_reason[tag] = {
            "kappa": cohen_kappa(first, second) if any(first) and any(second) else None,
            "first_used": sum(first), "second_used": sum(second), "pairs": len(pairs),
        }
    return {"pairs": len(pairs), "kappa": overall, "reliable": len(pairs) >= KAPPA_MIN_PAIRS,
            "per_reason": per_reason}


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


def audit_log(catalog: Catalog, limit: int = 200) -> list[dict[str, Any]]:
    with catalog.connect() as con:
        cur = con.execute(
            "SELECT event_id, event_at, actor, action, image_id, detail FROM review_audit "
            "ORDER BY event_id DESC LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
