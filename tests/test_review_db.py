"""The two-reviewer rule in db/ (no Streamlit): votes, leases, undo, adjudication, accounts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from db.accounts import (
    AccountError,
    add_reviewer,
    end_session,
    list_reviewers,
    reset_password,
    session_user,
    set_disabled,
    start_session,
    utcnow,
    verify_login,
)
from db.catalog import Catalog
from db.images import images_passing
from db.review import (
    NotNeeded,
    ReviewError,
    Rules,
    Vote,
    adjudicate,
    adjudication_queue,
    claim_next,
    file_errors,
    history,
    next_images,
    record_file_error,
    record_vote,
    release,
    requeue,
    rule_violations,
    sync_queue,
    undo_decision,
    undo_last_vote,
    undo_vote,
    upcoming_images,
)
from db.review_stats import (
    agreement,
    audit_log,
    cohen_kappa,
    current_votes,
    disagreements,
    progress,
    reviewer_progress,
    state_counts,
    vote_summary,
)
from db.warm import InstanceKeeper
from tests.conftest import write_photo_pool
from tests.review_fixtures import PASSWORD, build_review_catalog


@pytest.fixture(scope="module")
def review_template(tmp_path_factory) -> Path:
    """Built once: 8 real photos, reviewers alice, bob, carol, admins root, boss."""
    folder = tmp_path_factory.mktemp("review")
    cat = build_review_catalog(folder, 8, ["alice", "bob", "carol"], ["root", "boss"])
    return cat.path


@pytest.fixture
def review_catalog(review_template, tmp_path) -> Catalog:
    path = tmp_path / "catalog.duckdb"
    shutil.copy(review_template, path)
    return Catalog(path, lock_timeout_s=30)


def ids(catalog) -> list[str]:
    return images_passing(catalog, None)["image_id"].to_pylist()


def outcome(catalog, image_id):
    with catalog.connect() as con:
        return con.execute(
            "SELECT status, reason, detail FROM stage_outcomes "
            "WHERE image_id = ? AND stage = 'review'",
            [image_id],
        ).fetchone()


def test_two_accepts_from_distinct_reviewers_accept(review_catalog):
    img = ids(review_catalog)[0]
    assert record_vote(review_catalog, img, "alice", "accept") == "pending"
    assert outcome(review_catalog, img) is None
    assert record_vote(review_catalog, img, "bob", "accept") == "accepted"
    assert outcome(review_catalog, img)[:2] == ("pass", "accepted")
    summary = vote_summary(review_catalog).to_pylist()
    assert summary == [
        {
            "image_id": img,
            "accepts": 2,
            "rejects": 0,
            "reviewers": ["alice", "bob"],
            "decided_by": "consensus",
            "status": "accepted",
        }
    ]
    assert rule_violations(review_catalog) == []


def test_two_rejects_reject_with_the_shared_reason(review_catalog):
    img = ids(review_catalog)[1]
    record_vote(review_catalog, img, "alice", "reject", ["noise", "blur"], "grainy")
    assert record_vote(review_catalog, img, "bob", "reject", ["blur"]) == "rejected"
    status, reason, detail = outcome(review_catalog, img)
    assert (status, reason) == ("reject", "blur")
    assert "alice (noise, blur)" in detail or "alice (blur, noise)" in detail
    votes = current_votes(review_catalog).to_pylist()
    assert [v["reviewer"] for v in votes] == ["alice", "bob"]
    assert sorted(votes[0]["reasons"]) == ["blur", "noise"]


def test_one_vote_per_reviewer_and_never_a_third(review_catalog):
    img = ids(review_catalog)[0]
    record_vote(review_catalog, img, "alice", "accept")
    with pytest.raises(ReviewError, match="already voted"):
        record_vote(review_catalog, img, "alice", "reject")
    record_vote(review_catalog, img, "bob", "reject")
    with pytest.raises(ReviewError, match="already has the votes"):
        record_vote(review_catalog, img, "carol", "accept")
    with pytest.raises(ReviewError, match="unknown reason"):
        record_vote(review_catalog, ids(review_catalog)[1], "carol", "reject", ["ugly"])
    with pytest.raises(ReviewError, match="accept or reject"):
        record_vote(review_catalog, ids(review_catalog)[1], "carol", "maybe")
    assert rule_violations(review_catalog) == []


def test_split_goes_to_an_admin_who_did_not_vote(review_catalog):
    img = ids(review_catalog)[2]
    record_vote(review_catalog, img, "alice", "accept")
    assert record_vote(review_catalog, img, "root", "reject", ["watermark_text"]) == (
        "needs_adjudication"
    )
    assert outcome(review_catalog, img) is None  # nothing downstream sees a split as decided
    assert [d["image_id"] for d in adjudication_queue(review_catalog)] == [img]
    assert adjudication_queue(review_catalog, "root") == []  # root voted on it
    with pytest.raises(ReviewError, match="cannot adjudicate"):
        adjudicate(review_catalog, img, "root", "accept")
    with pytest.raises(ReviewError, match="not an admin"):
        adjudicate(review_catalog, img, "carol", "accept")
    with pytest.raises(ReviewError, match="not waiting"):
        adjudicate(review_catalog, ids(review_catalog)[3], "boss", "accept")
    adjudicate(review_catalog, img, "boss", "reject", "watermark in the corner")
    assert outcome(review_catalog, img)[:2] == ("reject", "adjudicated_reject")
    with pytest.raises(ReviewError, match="already decided"):
        adjudicate(review_catalog, img, "boss", "accept")
    row = vote_summary(review_catalog).to_pylist()[0]
    assert (row["status"], row["decided_by"]) == ("rejected", "boss")
    assert disagreements(review_catalog)[0]["decision"] == "reject by boss"
    assert rule_violations(review_catalog) == []


def test_leases_cap_holders_at_two_and_expire(review_catalog):
    cat = review_catalog
    first = claim_next(cat, "alice", None, lease_s=60)
    assert claim_next(cat, "alice", None, lease_s=60) == first  # a reload keeps the same image
    assert claim_next(cat, "bob", None, lease_s=60) == first  # the image needs two votes
    assert claim_next(cat, "carol", None, lease_s=60) != first  # never a third holder
    # carol cannot slip a vote onto an image two others hold
    with pytest.raises(ReviewError, match="already has the votes"):
        record_vote(cat, first, "carol", "accept")
    later = utcnow() + timedelta(seconds=120)
    assert claim_next(cat, "root", None, lease_s=60, now=later) == first  # both leases expired


def test_images_with_one_vote_come_first(review_catalog):
    cat = review_catalog
    images = ids(cat)
    record_vote(cat, images[5], "alice", "accept")
    assert claim_next(cat, "bob", None, lease_s=60) == images[5]
    # alice never gets back an image she voted on
    assert claim_next(cat, "alice", None, lease_s=60) != images[5]


def test_queue_follows_the_input_stage(review_catalog):
    cat = review_catalog
    assert claim_next(cat, "alice", "review_queue", lease_s=60) is None
    assert state_counts(cat, "review_queue")["unvoted"] == 0
    assert state_counts(cat, None)["unvoted"] == 8
    sync_queue(cat, None)
    assert reviewer_progress(cat, "alice", None)["left"] == 8


def test_undo_within_the_window_reopens_the_image(review_catalog):
    cat = review_catalog
    img = ids(cat)[0]
    record_vote(cat, img, "alice", "accept")
    record_vote(cat, img, "bob", "accept")
    assert outcome(cat, img) is not None
    assert undo_last_vote(cat, "bob", window_s=60, lease_s=60) == img
    assert outcome(cat, img) is None  # the consensus is gone with the vote
    assert claim_next(cat, "bob", None, lease_s=60) == img  # bob is given it back to re-vote
    assert record_vote(cat, img, "bob", "reject") == "needs_adjudication"
    with pytest.raises(ReviewError, match="can no longer be undone"):
        undo_last_vote(cat, "bob", 60, 60, now=utcnow() + timedelta(seconds=61))
    adjudicate(cat, img, "root", "accept")
    with pytest.raises(ReviewError, match="admin has already decided"):
        undo_last_vote(cat, "bob", 60, 60)
    with pytest.raises(ReviewError, match="no vote to undo"):
        undo_last_vote(cat, "carol", 60, 60)
    actions = [e["action"] for e in reversed(audit_log(cat))]
    assert actions[-5:] == ["vote", "vote", "undo", "vote", "adjudicate"]
    assert all(e["event_at"] is not None and e["actor"] for e in audit_log(cat))
    assert rule_violations(cat) == []


def test_accounts_login_and_disabling(review_catalog):
    cat = review_catalog
    assert verify_login(cat, "alice", PASSWORD).role == "reviewer"
    assert verify_login(cat, "alice", "wrong password") is None
    assert verify_login(cat, "nobody", PASSWORD) is None
    with cat.connect() as con:
        sql = "SELECT password_hash FROM reviewers WHERE name = 'alice'"
        stored = con.execute(sql).fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    set_disabled(cat, "alice")
    assert verify_login(cat, "alice", PASSWORD) is None
    with pytest.raises(ReviewError, match="not an active reviewer"):
        record_vote(cat, ids(cat)[0], "alice", "accept")
    with pytest.raises(AccountError, match="already exists"):
        add_reviewer(cat, "bob", "reviewer", PASSWORD)
    with pytest.raises(AccountError, match="at least 8"):
        add_reviewer(cat, "dave", "reviewer", "short")
    with pytest.raises(AccountError, match="role"):
        add_reviewer(cat, "dave", "owner", PASSWORD)
    assert [r.name for r in list_reviewers(cat)] == ["alice", "bob", "boss", "carol", "root"]


def test_cohen_kappa_and_agreement(review_catalog):
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == 0.0
    cat = review_catalog
    images = ids(cat)
    for img, (a, b) in zip(images, [("accept", "accept"), ("reject", "reject"),
                                    ("accept", "reject"), ("reject", "reject")], strict=False):
        record_vote(cat, img, "alice", a, ["blur"] if a == "reject" else [])
        record_vote(cat, img, "bob", b, ["blur"] if b == "reject" else [])
    result = agreement(cat)
    assert result["pairs"] == 4
    assert result["kappa"] == pytest.approx(0.5)  # po 0.75, pe 0.5
    assert result["per_reason"]["blur"]["kappa"] == pytest.approx(0.5)
    assert result["per_reason"]["blur"]["pairs"] == 4 and not result["reliable"]
    # a tag only one of the two votes ever used gets no kappa (it would read as agreement)
    record_vote(cat, images[4], "alice", "reject", ["noise"])
    record_vote(cat, images[4], "bob", "reject", ["blur"])
    assert agreement(cat)["per_reason"]["noise"]["kappa"] is None
    assert agreement(cat)["per_reason"]["noise"]["first_used"] == 1
    assert cohen_kappa([True, True], [True, True]) is None  # both raters constant: undefined


def test_next_images_votes_and_tops_up_the_leases_in_one_step(review_catalog):
    cat = review_catalog
    rules = Rules(lease_s=300, ahead=2, reject_needs_reason=True)
    first = next_images(cat, "alice", None, rules)
    assert len(first) == 3 and first[0].image_id == claim_next(cat, "alice", None, 300)
    with pytest.raises(ReviewError, match="needs at least one reason"):
        next_images(cat, "alice", None, rules, Vote(first[0].image_id, "reject"))
    step = next_images(cat, "alice", None, rules,
                       Vote(first[0].image_id, "reject", ("blur",), "x", seen_ms=1234))
    assert [s.image_id for s in step[:2]] == [f.image_id for f in first[1:]]
    assert len(step) == 3 and first[0].image_id not in {s.image_id for s in step}
    votes = current_votes(cat).to_pylist()
    assert [(v["image_id"], v["reasons"], v["comment"]) for v in votes] == [
        (first[0].image_id, ["blur"], "x")
    ]
    with cat.connect() as con:
        assert con.execute("SELECT seen_ms FROM review_votes").fetchone()[0] == 1234
    # bob is offered the image with one vote first; his vote completes it
    bob = next_images(cat, "bob", None, rules)
    assert bob[0].image_id == first[0].image_id
    next_images(cat, "bob", None, rules, Vote(bob[0].image_id, "reject", ("noise",)))
    assert vote_summary(cat).to_pylist()[0]["status"] == "rejected"
    # a refused vote changes nothing: alice keeps her leases, no vote is stored; the refusal of
    # a vote that is no longer needed says nothing about the other votes
    with pytest.raises(ReviewError, match="already voted"):
        next_images(cat, "alice", None, rules, Vote(first[0].image_id, "accept"))
    assert [x.image_id for x in next_images(cat, "alice", None, rules)] == [
        x.image_id for x in step]
    assert current_votes(cat).num_rows == 2
    with pytest.raises(NotNeeded):
        next_images(cat, "carol", None, rules, Vote(first[0].image_id, "accept"))
    assert rule_violations(cat) == []


def test_upcoming_images_are_the_unvoted_unleased_ones_in_claim_order(review_catalog):
    cat = review_catalog
    images = sorted(ids(cat))
    assert [i for i, _ in upcoming_images(cat, None, 3)] == images[:3]
    record_vote(cat, images[0], "alice", "accept")
    leased = claim_next(cat, "bob", None, 300)  # the one-vote image first
    assert leased == images[0]
    held = claim_next(cat, "carol", None, 300)  # then the first unvoted one
    assert [i for i, _ in upcoming_images(cat, None, 8)] == [i for i in images if i not in
                                                            (images[0], held)]
    assert all(path for _, path in upcoming_images(cat, None, 8))


def test_concurrent_sessions_voting_on_their_leases_never_break_the_rule(review_catalog):
    """Sessions voting through the API's one-transaction path on whatever they are leased."""
    cat = review_catalog
    names = ["alice", "bob", "carol", "root", "boss"]
    barrier = threading.Barrier(len(names))
    cast: list[str] = []

    rules = Rules(lease_s=300, ahead=2)

    def session(name: str) -> None:
        barrier.wait()
        held = next_images(cat, name, None, rules)
        while held:
            decision = "accept" if hash((name, held[0].image_id)) % 2 else "reject"
            held = next_images(cat, name, None, rules, Vote(held[0].image_id, decision))
            cast.append(name)

    threads = [threading.Thread(target=session, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cast) == 2 * len(ids(cat)) == current_votes(cat).num_rows
    assert rule_violations(cat) == []


def test_concurrent_sessions_never_break_the_rule(review_catalog):
    """12 threads (like server sessions) race for the same images; each gets at most two votes."""
    cat = review_catalog
    images = ids(cat)
    names = ["alice", "bob", "carol", "root", "boss"]
    with cat.connect() as con:  # more accounts, copied from alice's hash (argon2 is slow)
        for i in range(7):
            con.execute("INSERT INTO reviewers SELECT 'extra' || ?, role, password_hash, false, "
                        "now() FROM reviewers WHERE name = 'alice'", [str(i)])
    names += [f"extra{i}" for i in range(7)]
    barrier = threading.Barrier(len(names))
    stored, refused = [], []

    def session(name: str) -> None:
        barrier.wait()
        for img in images:
            try:
                record_vote(cat, img, name, "accept" if hash(name) % 2 else "reject")
                stored.append((img, name))
            except ReviewError:
                refused.append((img, name))

    threads = [threading.Thread(target=session, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stored) == 2 * len(images)
    assert current_votes(cat).num_rows == 2 * len(images)
    assert rule_violations(cat) == []


def test_votes_survive_an_ingest_running_at_the_same_time(review_catalog, tmp_path):
    """A separate ingest process writes the catalog while reviewers vote: nothing lost, no crash."""
    cat = review_catalog
    write_photo_pool(tmp_path / "more", 16, size=(256, 192))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfaid.cli", "ingest", str(tmp_path / "more"), "--workers", "1",
         "--catalog", str(cat.path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    cast = 0
    images = ids(cat)
    # Vote and undo in a loop for as long as the ingest runs, so the two really overlap.
    while proc.poll() is None or cast < 4:
        img = images[cast % len(images)]
        record_vote(cat, img, "alice", "accept")
        cast += 1
        undo_last_vote(cat, "alice", window_s=60, lease_s=60)
        time.sleep(0.05)  # reviewers pause between clicks; the ingest gets its turns
    for img in images:
        for name in ("alice", "bob"):
            record_vote(cat, img, name, "accept")
            cast += 1
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with cat.connect() as con:
        assert con.execute("SELECT count(*) FROM review_votes").fetchone()[0] == cast
    assert current_votes(cat).num_rows == 2 * len(images)
    assert len(ids(cat)) == 24
    assert rule_violations(cat) == []


def test_reviewers_cli(review_catalog, cli, tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("a long enough password\n")
    db = ["--catalog", review_catalog.path]
    assert cli("reviewers", "add", "zoe", "--role", "admin", "--password-file", pw, *db)[0] == 0
    code, out, _ = cli("reviewers", "list", "--json", *db)
    assert code == 0 and {"name": "zoe", "role": "admin", "disabled": False} in json.loads(out)
    assert verify_login(review_catalog, "zoe", "a long enough password").is_admin
    code, _, err = cli("reviewers", "add", "zoe", "--password-file", pw, *db)
    assert code == 2 and err.strip() == "error: reviewer 'zoe' already exists (use reset-password)"
    code, _, err = cli("reviewers", "add", "yan", "--password-file", tmp_path / "missing", *db)
    assert code == 2 and "cannot read password file" in err
    assert cli("reviewers", "disable", "zoe", *db)[0] == 0
    assert verify_login(review_catalog, "zoe", "a long enough password") is None
    assert cli("reviewers", "enable", "zoe", *db)[0] == 0
    pw.write_text("another long password\n")
    assert cli("reviewers", "reset-password", "zoe", "--password-file", pw, *db)[0] == 0
    assert verify_login(review_catalog, "zoe", "another long password") is not None
    code, _, err = cli("reviewers", "disable", "nobody", *db)
    assert code == 2 and "no reviewer named 'nobody'" in err


def test_keeper_holds_the_instance_but_leaves_gaps_for_other_processes(review_catalog):
    """A busy server keeps the catalog open, yet another process still gets the write lock."""
    keeper = InstanceKeeper(review_catalog, idle_s=0.5, max_hold_s=1.0, gap_s=1.6)
    keeper.touch()
    assert keeper.holding
    stop = threading.Event()

    def busy() -> None:  # a server whose sessions never pause
        while not stop.is_set():
            keeper.touch()
            time.sleep(0.05)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        code = (
            "from pathlib import Path; from db.catalog import Catalog\n"
            f"cat = Catalog(Path({str(review_catalog.path)!r}), lock_timeout_s=20)\n"
            "with cat.connect() as con: con.execute(\"INSERT INTO runs (command) VALUES ('x')\")\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        thread.join()
    time.sleep(0.8)  # idle: the keeper lets go on its own
    assert not keeper.holding
    keeper.close()


def test_an_undone_vote_still_bars_its_reviewer_from_adjudicating(review_catalog):
    """Vote, wait for a split, undo inside the window, adjudicate: one person alone. Refused."""
    cat = review_catalog
    img = ids(cat)[0]
    record_vote(cat, img, "root", "accept")
    undo_last_vote(cat, "root", window_s=60, lease_s=60)
    release(cat, "root")  # root walks away from the image handed back to re-vote
    record_vote(cat, img, "alice", "accept")
    record_vote(cat, img, "bob", "reject", ["noise"])
    assert [c["image_id"] for c in adjudication_queue(cat)] == [img]
    assert adjudication_queue(cat, "root") == []
    with pytest.raises(ReviewError, match="an undone vote counts"):
        adjudicate(cat, img, "root", "accept")
    adjudicate(cat, img, "boss", "accept")
    assert rule_violations(cat) == []
    # the check sees a decision written behind the rule's back, undone vote and all
    with cat.connect() as con:
        con.execute("UPDATE review_decisions SET decided_by = 'root' WHERE image_id = ?", [img])
    assert rule_violations(cat) == [f"adjudicated by someone who voted on it: {img}"]


def test_disabling_ends_sessions_and_frees_leases_at_once(review_catalog):
    cat = review_catalog
    held = next_images(cat, "carol", None, Rules(lease_s=600, ahead=3))
    token = start_session(cat, "carol", "10.0.0.7", hours=8)
    assert session_user(cat, token).name == "carol"
    with cat.connect() as con:
        stored = con.execute("SELECT token_hash FROM review_sessions").fetchall()
    assert stored and token not in str(stored)  # only a hash of the token is kept
    set_disabled(cat, "carol", actor="root")
    assert session_user(cat, token) is None
    with cat.connect() as con:
        sql = "SELECT count(*) FROM review_leases WHERE reviewer = 'carol'"
        assert con.execute(sql).fetchone()[0] == 0
    # everyone else can take carol's images right away
    assert next_images(cat, "alice", None, Rules(ahead=3))[0].image_id == held[0].image_id
    with pytest.raises(ReviewError, match="not an active reviewer"):
        next_images(cat, "carol", None, Rules())
    # a disabled admin can no longer change accounts, whatever their browser remembers
    set_disabled(cat, "boss", actor="root")
    with pytest.raises(AccountError, match="not an active admin"):
        add_reviewer(cat, "mallory", "admin", PASSWORD, actor="boss")
    with pytest.raises(AccountError, match="not an active admin"):
        set_disabled(cat, "root", actor="alice")  # nor can a reviewer


def test_sessions_expire_end_on_logout_and_on_password_reset(review_catalog):
    cat = review_catalog
    old = start_session(cat, "alice", None, hours=1, now=utcnow() - timedelta(hours=2))
    assert session_user(cat, old) is None  # expired
    one, two = start_session(cat, "alice", None, 1), start_session(cat, "alice", None, 1)
    assert end_session(cat, one) == "alice" and session_user(cat, one) is None
    assert session_user(cat, two).name == "alice"  # another tab's login is its own session
    reset_password(cat, "alice", "a brand new password")
    assert session_user(cat, two) is None
    assert session_user(cat, "not-a-token") is None


def test_skips_come_back_last_and_enough_of_them_go_to_an_admin(review_catalog):
    cat = review_catalog
    rules = Rules(lease_s=300, ahead=0, skips_to_admin=2)
    first = next_images(cat, "alice", None, rules)[0].image_id
    after = next_images(cat, "alice", None, rules, Vote(first, "skip", comment="can't tell"))
    assert after[0].image_id != first
    # alice gets it back only once everything else is done
    seen = [after[0].image_id]
    while True:
        held = next_images(cat, "alice", None, rules, Vote(seen[-1], "accept"))
        if not held:
            break
        seen.append(held[0].image_id)
    assert seen[-1] == first and len(seen) == len(ids(cat))
    undo_vote(cat, "alice", 60, 60, image_id=first)  # back to the skipped image, voted later
    next_images(cat, "alice", None, rules, Vote(first, "skip"))
    assert state_counts(cat, None)["unsure"] == 0  # one reviewer, however often, is one skip
    held = next_images(cat, "bob", None, rules)
    while held[0].image_id != first:
        held = next_images(cat, "bob", None, rules, Vote(held[0].image_id, "accept"))
    next_images(cat, "bob", None, rules, Vote(first, "skip"))
    assert state_counts(cat, None)["unsure"] == 1
    case = adjudication_queue(cat, "root")[0]
    assert (case["image_id"], case["kind"]) == (first, "unsure")
    assert [s["comment"] for s in case["skips"]] == ["can't tell", None, None]
    assert next_images(cat, "carol", None, rules) == []  # out of the queue (the rest is done)
    adjudicate(cat, first, "root", "reject", "cropped badly")
    assert vote_summary(cat).to_pylist() and rule_violations(cat) == []
    assert undo_decision(cat, "root", window_s=60) == first  # the admin takes it back
    assert [c["image_id"] for c in adjudication_queue(cat)] == [first]
    assert [h["decision"] for h in history(cat, "bob", 60)][:1] == ["skip"]


def test_change_my_vote_inside_the_window_only(review_catalog):
    cat = review_catalog
    images = ids(cat)
    t0 = utcnow()
    record_vote(cat, images[0], "alice", "accept", now=t0)
    record_vote(cat, images[1], "alice", "reject", ["blur"], now=t0 + timedelta(seconds=10))
    mine = history(cat, "alice", window_s=60, now=t0 + timedelta(seconds=30))
    assert [(h["image_id"], h["can_change"]) for h in mine] == [(images[1], True),
                                                                 (images[0], True)]
    late = t0 + timedelta(seconds=65)
    assert [h["can_change"] for h in history(cat, "alice", 60, now=late)] == [True, False]
    with pytest.raises(ReviewError, match="can no longer be undone"):
        undo_vote(cat, "alice", 60, 60, image_id=images[0], now=late)
    assert undo_vote(cat, "alice", 60, 60, image_id=images[1], now=late) == images[1]
    assert claim_next(cat, "alice", None, 60, now=late) == images[1]  # first in line again
    record_vote(cat, images[1], "alice", "accept", now=late)
    assert [(v["image_id"], v["decision"]) for v in current_votes(cat).to_pylist()] == [
        (images[0], "accept"), (images[1], "accept")]


def test_a_file_error_takes_the_image_out_of_every_queue_until_requeued(review_catalog):
    cat = review_catalog
    rules = Rules(lease_s=300, ahead=1)
    img = next_images(cat, "alice", None, rules)[0].image_id
    assert next_images(cat, "bob", None, rules)[0].image_id == img
    assert record_file_error(cat, img, "file_missing", "/x/a.jpg: gone", actor="alice")
    assert not record_file_error(cat, img, "file_missing", "again", actor="bob")  # once
    assert img not in {x.image_id for x in next_images(cat, "alice", None, rules)}
    assert img not in {x.image_id for x in next_images(cat, "bob", None, rules)}
    assert outcome(cat, img) == ("error", "file_missing", "/x/a.jpg: gone")
    assert [(e["image_id"], e["reason"]) for e in file_errors(cat)] == [(img, "file_missing")]
    assert state_counts(cat, None)["file_error"] == 1
    with pytest.raises(ReviewError, match="not an admin"):
        requeue(cat, img, "alice")
    requeue(cat, img, "root")
    assert outcome(cat, img) is None and file_errors(cat) == []
    assert img in {x.image_id for x in next_images(cat, "carol", None, rules)}
    # an image already decided keeps its outcome
    done = ids(cat)[5]
    record_vote(cat, done, "alice", "accept")
    record_vote(cat, done, "bob", "accept")
    assert not record_file_error(cat, done, "file_unreadable", "broken", actor="carol")
    assert outcome(cat, done)[:2] == ("pass", "accepted")
    assert rule_violations(cat) == []


def test_progress_counts_votes_needed_and_paces_without_breaks(review_catalog):
    cat = review_catalog
    images = ids(cat)
    t0 = utcnow() - timedelta(hours=2)
    for i, img in enumerate(images[:4]):  # 4 votes a minute apart, a long break, 1 more
        record_vote(cat, img, "alice", "accept", now=t0 + timedelta(minutes=i))
    record_vote(cat, images[4], "alice", "accept", now=t0 + timedelta(minutes=90))
    sync_queue(cat, None)
    prog = progress(cat, None)
    alice = prog["reviewers"][0]
    assert alice["votes"] == 5 and alice["votes_per_hour"] == pytest.approx(5 / (3 / 60))
    assert alice["left"] == 3 and prog["team"]["votes_needed"] == 16 - 5
    assert prog["team"]["votes_cast"] == 5 and prog["team"]["eta_hours"] == pytest.approx(11.0)
