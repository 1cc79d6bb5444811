"""The materialised review queue: synced from the input stage, leased from per-reviewer frontiers.

A queue row per (input stage, image) holds the image's current voters and state; rows are
appended in hand-out order (seq) and never moved, so DuckDB's per-row-group min/max of seq lets
a `seq` range read one row group. Each reviewer has a frontier: every row before it is taken for
them (voted, skipped, held by two, decided). The next images are searched in a window after the
frontier, so finding them costs the same over 10k or 1M images. Whenever an image becomes
available again (a lease ends, a vote is undone, an image is requeued) every frontier of its
queue is lowered to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from db.catalog import Catalog, in_transaction

QUEUE_ALL = "*"  # the queue of every ingested image (--stage-input ingest / all)
WINDOW = 4096  # rows per search window; grows x4 while a window has nothing
ANYONE = ""  # the frontier of a reviewer with none of their own yet
VOTES_NEEDED = 2
# A state no vote changes back to open on its own (an admin or a sync does).
_STICKY = ("unsure", "error", "gone")

# One writer of the review tables at a time inside a process: DuckDB's optimistic concurrency
# would let two threads both see one vote and both add a second, so rule checks and writes are
# serialised here (other processes are excluded by DuckDB's file lock).
_WRITE_LOCK = threading.Lock()


@contextmanager
def writing(catalog: Catalog) -> Iterator:
    """A connection inside one write transaction, serialised with this process's other
    review writers."""
    with catalog.connect() as con, _WRITE_LOCK, in_transaction(con):
        yield con


def queue_name(stage_input: str | None) -> str:
    return QUEUE_ALL if stage_input is None else stage_input


@dataclass(frozen=True)
class Lease:
    image_id: str
    path: str | None
    seq: int


def queue_state(decisions: list[str], decided: bool, current: str | None) -> str:
    """A queue row's state from its current votes' decisions (in order) and any admin decision."""
    if decided:
        return "done"
    if len(decisions) >= VOTES_NEEDED:
        return "split" if len(set(decisions)) > 1 else "done"
    if current in _STICKY:
        return current
    return "open"


def _source(stage_input: str | None) -> tuple[str, list]:
    if stage_input is None:
        return "SELECT image_id FROM images", []
    return (
        "SELECT DISTINCT image_id FROM stage_outcomes WHERE stage = ? AND status = 'pass'",
        [stage_input],
    )


def _source_stamp(con, stage_input: str | None) -> tuple[int, datetime | None]:
    if stage_input is None:
        return con.execute("SELECT count(*), max(ingested_at) FROM images").fetchone()
    return con.execute(
        "SELECT count(*), max(decided_at) FROM stage_outcomes WHERE stage = ? AND status = 'pass'",
        [stage_input],
    ).fetchone()


def needs_sync(con, stage_input: str | None) -> bool:
    """Whether the input stage changed since the queue was last synced (a count and a stamp)."""
    meta = con.execute(
        "SELECT source_rows, source_stamp FROM review_queue_meta WHERE queue = ?",
        [queue_name(stage_input)],
    ).fetchone()
    return meta is None or tuple(meta) != tuple(_source_stamp(con, stage_input))


def sync(con, stage_input: str | None, skips_to_admin: int, now: datetime) -> dict[str, int]:
    """Bring the queue in line with the input stage (inside the caller's write transaction):
    new images appended in image-id order with their votes so far, images that left the stage
    marked gone, images that came back reopened. Returns the counts of each."""
    queue = queue_name(stage_input)
    source, params = _source(stage_input)
    rows, stamp = _source_stamp(con, stage_input)
    meta = con.execute(
        "SELECT next_seq FROM review_queue_meta WHERE queue = ?", [queue]
    ).fetchone()
    next_seq = meta[0] if meta else 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE _src AS {source}", params)
    added = con.execute(
        f"""
        INSERT INTO review_queue (queue, seq, image_id, path, voter_a, voter_b, skips, state)
        WITH v AS (
            SELECT image_id, list(reviewer ORDER BY cast_at, vote_id) AS who,
                   count(DISTINCT decision) > 1 AS split
            FROM review_votes WHERE undone_at IS NULL GROUP BY image_id),
        k AS (SELECT image_id, count(DISTINCT reviewer)::SMALLINT AS n
              FROM review_skips GROUP BY image_id),
        e AS (SELECT DISTINCT image_id FROM stage_outcomes
              WHERE stage = 'review' AND status = 'error'),
        fresh AS (SELECT s.image_id FROM _src s
                  ANTI JOIN (SELECT image_id FROM review_queue WHERE queue = $q) r
                  ON r.image_id = s.image_id)
        SELECT $q, $next + row_number() OVER (ORDER BY f.image_id) - 1, f.image_id, p.path,
               v.who[1], v.who[2], coalesce(k.n, 0),
               CASE WHEN d.image_id IS NOT NULL THEN 'done'
                    WHEN len(v.who) >= {VOTES_NEEDED} AND v.split THEN 'split'
                    WHEN len(v.who) >= {VOTES_NEEDED} THEN 'done'
                    WHEN e.image_id IS NOT NULL THEN 'error'
                    WHEN coalesce(k.n, 0) >= $skips THEN 'unsure'
                    ELSE 'open' END
        FROM fresh f
        LEFT JOIN image_paths p ON p.image_id = f.image_id
        LEFT JOIN v ON v.image_id = f.image_id
        LEFT JOIN k ON k.image_id = f.image_id
        LEFT JOIN e ON e.image_id = f.image_id
        LEFT JOIN review_decisions d ON d.image_id = f.image_id
        """,
        {"q": queue, "next": next_seq, "skips": skips_to_admin},
    ).fetchone()[0]
    gone = con.execute(
        "UPDATE review_queue SET state = 'gone' WHERE queue = ? AND state = 'open' "
        "AND image_id NOT IN (SELECT image_id FROM _src)",
        [queue],
    ).fetchone()[0]
    back = con.execute(
        "UPDATE review_queue SET state = 'open' WHERE queue = ? AND state = 'gone' "
        "AND image_id IN (SELECT image_id FROM _src) RETURNING seq",
        [queue],
    ).fetchall()
    con.execute("DROP TABLE _src")
    if back:
        _lower(con, queue, min(s for (s,) in back))
    con.execute(
        "INSERT OR REPLACE INTO review_queue_meta VALUES (?, ?, ?, ?, ?)",
        [queue, next_seq + added, rows, stamp, now],
    )
    return {"added": added, "gone": gone, "reopened": len(back)}


def ensure(con, stage_input: str | None, skips_to_admin: int, now: datetime) -> None:
    """Sync a queue that was never built (the first claim on a catalog)."""
    if _end(con, queue_name(stage_input)) is None:
        sync(con, stage_input, skips_to_admin, now)


def refresh(con, image_id: str, decisions: list[tuple[str, str]], decided: bool) -> None:
    """Write an image's current voters (reviewer, decision) in order and its state into every
    queue holding it; an image that is open again lowers the frontiers. (No UPDATE ...
    RETURNING on this table: DuckDB runs it as delete + insert, which moves the row.)"""
    rows = con.execute(
        "SELECT queue, seq, state FROM review_queue WHERE image_id = ?", [image_id]
    ).fetchall()
    who = [r for r, _ in decisions] + [None, None]
    states = {queue_state([d for _, d in decisions], decided, current) for _, _, current in rows}
    if len(states) == 1:  # the usual case: one statement for every queue's row
        con.execute(
            "UPDATE review_queue SET voter_a = ?, voter_b = ?, state = ? WHERE image_id = ?",
            [who[0], who[1], states.pop(), image_id],
        )
    else:
        for queue, seq, current in rows:
            con.execute(
                "UPDATE review_queue SET voter_a = ?, voter_b = ?, state = ? "
                "WHERE queue = ? AND seq = ? AND image_id = ?",
                [who[0], who[1], queue_state([d for _, d in decisions], decided, current),
                 queue, seq, image_id],
            )
    for queue, seq, current in rows:
        if queue_state([d for _, d in decisions], decided, current) == "open":
            _lower(con, queue, seq)


def set_state(con, image_id: str, state: str) -> None:
    """Mark an image's queue rows (error, unsure, or open again after an admin requeues it)."""
    rows = con.execute(
        "SELECT queue, seq FROM review_queue WHERE image_id = ?", [image_id]
    ).fetchall()
    con.execute("UPDATE review_queue SET state = ? WHERE image_id = ?", [state, image_id])
    if state == "open":
        for queue, seq in rows:
            _lower(con, queue, seq)


def add_skip(con, image_id: str) -> int:
    """Count one more distinct skipper on the image's rows; returns the new count."""
    con.execute("UPDATE review_queue SET skips = skips + 1 WHERE image_id = ?", [image_id])
    row = con.execute(
        "SELECT max(skips) FROM review_queue WHERE image_id = ?", [image_id]
    ).fetchone()
    return row[0] or 0


def reopen_for_others(con, image_id: str) -> None:
    """An image someone let go of (lease ended, skipped): lower the frontiers to it."""
    for queue, seq in con.execute(
        "SELECT queue, seq FROM review_queue WHERE image_id = ?", [image_id]
    ).fetchall():
        _lower(con, queue, seq)


def _lower(con, queue: str, seq: int) -> None:
    con.execute(
        "UPDATE review_frontiers SET seq = ? WHERE queue = ? AND seq > ?", [seq, queue, seq]
    )


# ---- leases ----------------------------------------------------------------------------------


def sweep(con, now: datetime) -> None:
    """Drop expired leases; their images are available again."""
    for (image_id,) in con.execute(
        "DELETE FROM review_leases WHERE expires_at <= ? RETURNING image_id", [now]
    ).fetchall():
        reopen_for_others(con, image_id)


def release(con, reviewer: str, image_id: str | None = None) -> None:
    """End the reviewer's leases (one image, or all of them)."""
    if image_id is None:
        gone = con.execute(
            "DELETE FROM review_leases WHERE reviewer = ? RETURNING image_id", [reviewer]
        ).fetchall()
    else:
        gone = con.execute(
            "DELETE FROM review_leases WHERE reviewer = ? AND image_id = ? RETURNING image_id",
            [reviewer, image_id],
        ).fetchall()
    for (img,) in gone:
        reopen_for_others(con, img)


def lease(
    con,
    reviewer: str,
    stage_input: str | None,
    lease_s: float,
    count: int,
    now: datetime,
    skips_to_admin: int = 2,
    top_up: int = 0,
) -> list[Lease]:
    """Top the reviewer's leases up to `count` (+ `top_up`) images and extend them; returns
    them in the order they are to be shown. Runs inside the caller's write transaction
    (building the queue on its first use)."""
    queue = queue_name(stage_input)
    end, mine, anyone = con.execute(
        "SELECT (SELECT next_seq FROM review_queue_meta WHERE queue = $q), "
        "(SELECT seq FROM review_frontiers WHERE queue = $q AND reviewer = $r), "
        "(SELECT seq FROM review_frontiers WHERE queue = $q AND reviewer = '')",
        {"q": queue, "r": reviewer},
    ).fetchone()
    if end is None:
        sync(con, stage_input, skips_to_admin, now)
        end = _end(con, queue)
    sweep(con, now)
    held, stale, soonest = [], [], None
    for image_id, path, seq, state, expires_at in con.execute(
        "SELECT l.image_id, q.path, q.seq, q.state, l.expires_at FROM review_leases l "
        "LEFT JOIN review_queue q ON q.image_id = l.image_id AND q.queue = ? "
        "WHERE l.reviewer = ? ORDER BY l.leased_at, l.image_id",
        [queue, reviewer],
    ).fetchall():
        if state == "open":
            held.append(Lease(image_id, path, seq))
            soonest = expires_at if soonest is None else min(soonest, expires_at)
        else:  # it stopped needing this reviewer (decided, sent to an admin, file error)
            stale.append(image_id)
    for image_id in stale:
        con.execute(
            "DELETE FROM review_leases WHERE reviewer = ? AND image_id = ?", [reviewer, image_id]
        )
    expires = now + timedelta(seconds=lease_s)
    if len(held) < count:
        # Topped up past `count` once a slot is free, so most clicks skip the search.
        start = mine if mine is not None else (anyone or 0)
        want = count + top_up - len(held)
        fresh = find(con, reviewer, queue, want, start, end, own=mine is not None)
        if fresh:  # leased_at orders them as found
            con.executemany(
                "INSERT INTO review_leases (image_id, reviewer, expires_at, leased_at) "
                "VALUES (?, ?, ?, ?)",
                [[f.image_id, reviewer, expires, now + timedelta(microseconds=i)]
                 for i, f in enumerate(fresh)],
            )
        held += fresh
    # Extended only when half a lease has passed: most clicks skip the write.
    if soonest is not None and soonest < now + timedelta(seconds=lease_s / 2):
        con.execute(
            "UPDATE review_leases SET expires_at = ? WHERE reviewer = ?", [expires, reviewer]
        )
    return held


def lease_again(con, reviewer: str, image_id: str, lease_s: float, now: datetime) -> None:
    """Give an image back to the reviewer at the front of their leases (after an undo)."""
    first = con.execute(
        "SELECT min(leased_at) FROM review_leases WHERE reviewer = ?", [reviewer]
    ).fetchone()[0]
    con.execute(
        "DELETE FROM review_leases WHERE reviewer = ? AND image_id = ?", [reviewer, image_id]
    )
    con.execute(
        "INSERT INTO review_leases (image_id, reviewer, expires_at, leased_at) VALUES (?, ?, ?, ?)",
        [image_id, reviewer, now + timedelta(seconds=lease_s),
         min(first, now) - timedelta(milliseconds=1) if first else now],
    )


# Open rows in a window that still lack a second voter and that this reviewer did not vote on;
# who holds them is checked in Python against the (small) lease table. The minimum is taken
# before that check, so the frontier may stay a little low: a lower bound is always safe.
_CANDIDATES = """
SELECT seq, image_id, path, voter_a IS NOT NULL AS voted, min(seq) OVER () AS first_seq
FROM review_queue
WHERE queue = $q AND seq >= $lo AND seq < $hi AND state = 'open' AND voter_b IS NULL
  AND coalesce(voter_a <> $r, true)
ORDER BY voted DESC, seq
LIMIT $k
"""


def find(
    con, reviewer: str, queue: str, want: int, start: int, end: int, own: bool = False
) -> list[Lease]:
    """Up to `want` images this reviewer may take now, searching from their frontier `start`:
    those with one vote first, then in queue order; images they skipped only once nothing else
    is left. Moves their frontier (`own`: they have a frontier row already)."""
    holders: dict[str, list[str]] = {}
    skipped: set[str] = set()
    for kind, image_id, who in con.execute(
        "SELECT 'held', image_id, list(reviewer) FROM review_leases GROUP BY image_id "
        "UNION ALL SELECT 'skipped', image_id, NULL FROM review_skips WHERE reviewer = ?",
        [reviewer],
    ).fetchall():
        if kind == "held":
            holders[image_id] = who
        else:
            skipped.add(image_id)

    def takes(image_id: str, voted: bool) -> bool:
        who = holders.get(image_id, ())
        return reviewer not in who and image_id not in skipped and voted + len(who) < VOTES_NEEDED

    lo, width, found, first = start, WINDOW, [], None
    while lo < end and len(found) < want:
        limit = want + len(holders) + len(skipped)  # enough that the check leaves `want`
        rows = con.execute(
            _CANDIDATES, {"r": reviewer, "q": queue, "lo": lo, "hi": lo + width, "k": limit}
        ).fetchall()
        if rows and first is None:
            first = rows[0][4]
        found += [Lease(i, p, s) for s, i, p, voted, _ in rows if takes(i, voted)]
        lo, width = lo + width, width * 4
    found = found[:want]
    frontier = first if first is not None else end
    if frontier != start:
        _set_frontier(con, queue, reviewer, frontier, exists=own)
    if len(found) < want:
        found += _skipped(con, reviewer, queue, want - len(found), {f.image_id for f in found})
    return found


def _skipped(con, reviewer: str, queue: str, want: int, taken: set[str]) -> list[Lease]:
    """Images this reviewer skipped that still need a vote, oldest skip first."""
    rows = con.execute(
        f"""
        SELECT q.image_id, q.path, q.seq FROM review_skips s
        JOIN review_queue q ON q.image_id = s.image_id AND q.queue = $q
        LEFT JOIN (SELECT image_id, count(*) AS holders FROM review_leases GROUP BY image_id) l
             ON l.image_id = q.image_id
        WHERE s.reviewer = $r AND q.state = 'open'
          AND coalesce(q.voter_a <> $r, true) AND coalesce(q.voter_b <> $r, true)
          AND (q.voter_a IS NOT NULL)::INT + (q.voter_b IS NOT NULL)::INT
              + coalesce(l.holders, 0) < {VOTES_NEEDED}
          AND q.image_id NOT IN (SELECT image_id FROM review_leases WHERE reviewer = $r)
        GROUP BY ALL ORDER BY min(s.skipped_at), q.seq LIMIT $want
        """,
        {"r": reviewer, "q": queue, "want": want + len(taken)},
    ).fetchall()
    return [Lease(*row) for row in rows if row[0] not in taken][:want]


def upcoming(con, stage_input: str | None, limit: int) -> list[tuple[str, str]]:
    """(image_id, path) of the next `limit` images nobody voted on or holds, in hand-out order:
    the previews worth building before anyone asks. Moves the shared frontier (the start of a
    reviewer with no frontier yet) to the first image anyone could take."""
    queue = queue_name(stage_input)
    end = _end(con, queue) or 0
    lo = _frontier(con, queue, ANYONE)
    width, found, first = WINDOW, [], None
    while lo < end and len(found) < limit:
        rows = con.execute(
            f"""
            WITH a AS (
                SELECT q.seq, q.image_id, q.path,
                       q.voter_a IS NULL AND q.voter_b IS NULL AND l.holders IS NULL AS fresh
                FROM review_queue q
                LEFT JOIN (SELECT image_id, count(*) AS holders FROM review_leases
                           GROUP BY image_id) l ON l.image_id = q.image_id
                WHERE q.queue = $q AND q.seq >= $lo AND q.seq < $hi AND q.state = 'open'
                  AND (q.voter_a IS NOT NULL)::INT + (q.voter_b IS NOT NULL)::INT
                      + coalesce(l.holders, 0) < {VOTES_NEEDED})
            SELECT seq, image_id, path, (SELECT min(seq) FROM a) FROM a WHERE fresh
            ORDER BY seq LIMIT $want
            """,
            {"q": queue, "lo": lo, "hi": lo + width, "want": limit - len(found)},
        ).fetchall()
        if first is None:
            first = rows[0][3] if rows else _first_available(con, queue, lo, lo + width)
        found += [(image_id, path) for _, image_id, path, _ in rows]
        lo, width = lo + width, width * 4
    _set_frontier(con, queue, ANYONE, first if first is not None else end)
    return found


def _first_available(con, queue: str, lo: int, hi: int) -> int | None:
    return con.execute(
        f"""SELECT min(q.seq) FROM review_queue q
        LEFT JOIN (SELECT image_id, count(*) AS holders FROM review_leases GROUP BY image_id) l
             ON l.image_id = q.image_id
        WHERE q.queue = ? AND q.seq >= ? AND q.seq < ? AND q.state = 'open'
          AND (q.voter_a IS NOT NULL)::INT + (q.voter_b IS NOT NULL)::INT
              + coalesce(l.holders, 0) < {VOTES_NEEDED}""",
        [queue, lo, hi],
    ).fetchone()[0]


def _end(con, queue: str) -> int | None:
    row = con.execute("SELECT next_seq FROM review_queue_meta WHERE queue = ?", [queue]).fetchone()
    return row[0] if row else None


def _frontier(con, queue: str, reviewer: str) -> int:
    found = dict(con.execute(
        "SELECT reviewer, seq FROM review_frontiers WHERE queue = ? AND reviewer IN (?, ?)",
        [queue, reviewer, ANYONE],
    ).fetchall())
    return found.get(reviewer, found.get(ANYONE, 0))


def _set_frontier(con, queue: str, reviewer: str, seq: int, exists: bool = False) -> None:
    if exists:  # a plain update costs half an upsert
        con.execute("UPDATE review_frontiers SET seq = ? WHERE queue = ? AND reviewer = ?",
                    [seq, queue, reviewer])
    else:
        con.execute("INSERT OR REPLACE INTO review_frontiers VALUES (?, ?, ?)",
                    [queue, reviewer, seq])
