"""The materialised review queue: frontiers never pass an image someone could take, through a
long random day of claims, votes, skips, undos, lease expiry and adjudication; and the next-image
search reads one row group however long the queue is."""

from __future__ import annotations

import random
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from db import review_queue
from db.accounts import utcnow
from db.catalog import Catalog
from db.migrate import migrate
from db.review import (
    ReviewError,
    Rules,
    Vote,
    adjudicate,
    adjudication_queue,
    next_images,
    release,
    rule_violations,
    sync_queue,
    undo_vote,
    upcoming_images,
)
from db.review_stats import current_votes
from tests.review_fixtures import build_review_catalog

REVIEWERS = ["alice", "bob", "carol", "dave", "erin"]
ADMINS = ["root", "boss"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("review-queue")
    return build_review_catalog(folder, 30, REVIEWERS, ADMINS, size=(96, 64)).path


@pytest.fixture
def cat(template, tmp_path) -> Catalog:
    path = tmp_path / "catalog.duckdb"
    shutil.copy(template, path)
    return Catalog(path, lock_timeout_s=30)


def frontier_violations(cat: Catalog) -> list[str]:
    """Rows a reviewer could take that lie before their frontier (they would never be offered).
    Leases in the table count as held: every search sweeps expired ones first."""
    with cat.connect() as con:
        rows = con.execute(
            """
            WITH f AS (SELECT reviewer, seq FROM review_frontiers WHERE queue = '*'),
            l AS (SELECT image_id, count(*) AS holders, list(reviewer) AS who
                  FROM review_leases GROUP BY image_id)
            SELECT f.reviewer, q.image_id, q.seq, f.seq FROM review_queue q
            LEFT JOIN l USING (image_id) JOIN f ON q.seq < f.seq
            WHERE q.queue = '*' AND q.state = 'open'
              AND (q.voter_a IS NOT NULL)::INT + (q.voter_b IS NOT NULL)::INT
                  + coalesce(l.holders, 0) < 2
              AND (f.reviewer = '' OR (
                   coalesce(q.voter_a <> f.reviewer, true)
                   AND coalesce(q.voter_b <> f.reviewer, true)
                   AND NOT list_contains(coalesce(l.who, []), f.reviewer)
                   AND q.image_id NOT IN (SELECT image_id FROM review_skips
                                          WHERE reviewer = f.reviewer)))
            """
        ).fetchall()
    return [f"{r}: {img[:8]} at {s} before frontier {fs}" for r, img, s, fs in rows]


@pytest.fixture
def warm(cat):
    """One connection held open, as the server's keeper does: each unit of work then reuses the
    open database instance instead of opening the file."""
    with cat.connect():
        yield cat


def test_frontiers_never_pass_an_available_image_through_a_random_day(warm, monkeypatch):
    cat = warm
    monkeypatch.setattr(review_queue, "WINDOW", 4)  # many windows over 30 images
    rng = random.Random(21)
    now = utcnow()
    rules = Rules(lease_s=120, ahead=1, undo_window_s=600, skips_to_admin=2)
    for step in range(220):
        name = rng.choice(REVIEWERS)
        op = rng.random()
        try:
            if op < 0.45:
                held = next_images(cat, name, None, rules, now=now)
                if held and rng.random() < 0.85:
                    pick = rng.choice(held[:2]).image_id
                    decision = rng.choice(["accept", "reject", "skip"])
                    reasons = ("blur",) if decision == "reject" else ()
                    next_images(cat, name, None, rules, Vote(pick, decision, reasons), now=now)
            elif op < 0.55:
                undo_vote(cat, name, rules.undo_window_s, rules.lease_s, now=now)
            elif op < 0.62:
                release(cat, name)
            elif op < 0.70:
                now += timedelta(seconds=rules.lease_s + 1)  # every lease lapses
            elif op < 0.78:
                cases = adjudication_queue(cat)
                if cases:
                    adjudicate(cat, cases[0]["image_id"], rng.choice(ADMINS),
                               rng.choice(["accept", "reject"]), now=now)
            else:
                upcoming_images(cat, None, 3)
        except ReviewError:
            pass  # refusals are part of the day (an undo too late, an ineligible admin)
        now += timedelta(seconds=rng.uniform(0.5, 5))
        assert frontier_violations(cat) == [], f"after step {step}"
        assert rule_violations(cat) == [], f"after step {step}"
    # the day ends with everyone draining the queue: nothing is stranded behind a frontier
    now += timedelta(seconds=rules.lease_s + 1)
    for _ in range(200):
        busy = False
        for name in REVIEWERS:
            held = next_images(cat, name, None, rules, now=now)
            if held:
                busy = True
                next_images(cat, name, None, rules, Vote(held[0].image_id, "accept"), now=now)
        if not busy:
            break
    with cat.connect() as con:
        left = con.execute(
            "SELECT count(*) FROM review_queue WHERE state = 'open' AND skips = 0"
        ).fetchone()[0]
    assert left == 0
    assert rule_violations(cat) == []


def test_sync_adds_new_images_marks_gone_ones_and_keeps_votes(cat):
    with cat.connect() as con:
        sql = "SELECT image_id FROM images ORDER BY image_id"
        images = [r[0] for r in con.execute(sql).fetchall()]
        # a selection put the first 10 images into review_queue
        con.executemany(
            "INSERT INTO stage_outcomes (image_id, stage, status) VALUES (?, 'review_queue', "
            "'pass')", [[i] for i in images[:10]])
    held = next_images(cat, "alice", "review_queue", Rules(ahead=20))
    assert [h.image_id for h in held] == images[:10]
    next_images(cat, "alice", "review_queue", Rules(ahead=20), Vote(images[0], "accept"))
    with cat.connect() as con:  # a new selection: image 1 leaves, 10 and 11 join
        con.execute("DELETE FROM stage_outcomes WHERE stage = 'review_queue' AND image_id = ?",
                    [images[1]])
        con.executemany(
            "INSERT INTO stage_outcomes (image_id, stage, status) VALUES (?, 'review_queue', "
            "'pass')", [[i] for i in images[10:12]])
    assert sync_queue(cat, "review_queue") == {"added": 2, "gone": 1, "reopened": 0}
    assert sync_queue(cat, "review_queue") is None  # nothing changed since
    bob = [h.image_id for h in next_images(cat, "bob", "review_queue", Rules(ahead=20))]
    assert bob[0] == images[0]  # the image with one vote first
    assert images[1] not in bob and {images[10], images[11]} <= set(bob)
    assert current_votes(cat).num_rows == 1 and rule_violations(cat) == []


def test_the_next_image_search_reads_one_row_group_of_a_long_queue(tmp_path):
    """At 400k queued images the window after the frontier is one row group of four (the
    timing at 10k vs 1M is in benchmarks/bench_review_load.py --queue-scale)."""
    cat = Catalog(tmp_path / "big.duckdb")
    migrate(cat)
    with cat.connect() as con:
        con.execute(
            "INSERT INTO review_queue SELECT '*', i, lpad(i::VARCHAR, 64, '0'), NULL, "
            "CASE WHEN i < 300000 THEN 'a' END, CASE WHEN i < 300000 THEN 'b' END, 0, "
            "CASE WHEN i < 300000 THEN 'done' ELSE 'open' END FROM range(400000) t(i)")
        con.execute("INSERT INTO review_queue_meta VALUES ('*', 400000, NULL, NULL, NULL)")
        con.execute("INSERT INTO review_frontiers VALUES ('*', '', 300000)")
        con.execute("CHECKPOINT")
        sql = review_queue._CANDIDATES.replace("SELECT seq", "EXPLAIN ANALYZE SELECT seq", 1)
        plan = con.execute(sql, {"r": "zoe", "q": "*", "lo": 300000, "hi": 300000 + 4096,
                                 "k": 4}).fetchall()[0][1]
        found = review_queue.find(con, "zoe", "*", 4, start=300000, end=400000)
    assert "Row Groups Scanned: 1 / 4" in plan, plan
    assert [f.seq for f in found] == [300000, 300001, 300002, 300003]


def test_votes_change_queue_rows_in_place(tmp_path):
    """Votes, skips and state changes update a queue row in place (scalar columns, no UPDATE
    ... RETURNING): a row that moved to the end would widen the last row group's seq range and
    defeat the window search."""
    cat = Catalog(tmp_path / "c.duckdb")
    migrate(cat)
    with cat.connect() as con:
        con.execute("INSERT INTO review_queue SELECT '*', i, lpad(i::VARCHAR, 64, '0'), NULL, "
                    "NULL, NULL, 0, 'open' FROM range(1000) t(i)")
        before = con.execute("SELECT rowid FROM review_queue WHERE seq = 5").fetchone()
        image = "0" * 63 + "5"
        review_queue.refresh(con, image, [("alice", "accept")], decided=False)
        review_queue.add_skip(con, image)
        review_queue.set_state(con, image, "unsure")
        after = con.execute("SELECT rowid, voter_a, skips, state FROM review_queue "
                            "WHERE seq = 5").fetchone()
    assert after == (before[0], "alice", 1, "unsure")
