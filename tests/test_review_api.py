"""The review API of a real `hfaid review` server over HTTP, as a browser and as a hostile
client would use it: cookies, CSRF header, leases, blindness, file errors, login limits."""

from __future__ import annotations

import http.client
import json
import struct
import threading
from http.cookies import SimpleCookie

import pytest

from db.accounts import set_disabled
from db.review import Rules, file_errors, next_images, rule_violations
from db.review_stats import current_votes
from review_app.auth import COOKIE
from tests.review_fixtures import (
    PASSWORD,
    build_review_catalog,
    free_port,
    start_server,
    stop_server,
)

REVIEWERS = ["alice", "bob", "carol", "dave", "erin", "frank", "gina"]
ADMINS = ["root"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review-api")
    cat = build_review_catalog(folder, 16, REVIEWERS, ADMINS)
    config = folder / "hfaid.toml"
    config.write_text(
        "[review]\nlogin_attempts = 2\nlogin_delay_s = 30\nlogin_client_attempts = 50\n"
        "prefetch_ahead = 1\n"
    )
    port = free_port()
    proc = start_server(cat.path, port, folder / "server.log", "--config", str(config))
    yield cat, port
    stop_server(proc)


def unbundle(raw: bytes) -> tuple[dict, list[bytes]]:
    """A bundle answer: 4-byte header length, JSON header, then the JPEGs back to back."""
    size = struct.unpack(">I", raw[:4])[0]
    meta = json.loads(raw[4 : 4 + size])
    parts, at = [], 4 + size
    for length in meta["parts"]:
        parts.append(raw[at : at + length])
        at += length
    assert at == len(raw)
    return meta, parts


class Client:
    """One browser: its cookie, its address (any 127.0.0.x reaches a loopback server)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port, self.source, self.cookie = port, source, None

    def call(self, method: str, path: str, body: dict | None = None, csrf: bool = True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60,
                                          source_address=(self.source, 0))
        headers = {"X-Hfaid": "1"} if csrf else {}
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body)
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        conn.request(method, path, payload, headers)
        resp = conn.getresponse()
        raw = resp.read()
        for header in resp.headers.get_all("set-cookie") or []:
            morsel = SimpleCookie(header).get(COOKIE)
            if morsel is not None:
                self.cookie = morsel.value or None
                self.last_cookie_header = header
        conn.close()
        kind = resp.headers.get("content-type", "")
        return resp.status, json.loads(raw) if kind.startswith("application/json") else raw

    def login(self, name: str, password: str = PASSWORD):
        return self.call("POST", "/api/review/login", {"name": name, "password": password})

    def items(self) -> list[str]:
        """The images leased to this session, in the order its page shows them."""
        return [i["image_id"] for i in self.call("GET", "/api/review/state")[1]["items"]]


def test_login_sets_a_strict_http_only_cookie_and_every_tab_shares_it(server):
    cat, port = server
    anon = Client(port)
    status, body = anon.call("GET", "/api/review/state")
    assert status == 401 and "log in" in body["error"]
    alice = Client(port)
    status, body = alice.login("alice")
    assert (status, body["role"]) == (200, "reviewer")
    header = alice.last_cookie_header.lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/" in header
    status, state = alice.call("GET", "/api/review/state")
    # prefetch_ahead = 1: the image on screen, one ahead, and two more leased per top-up
    assert status == 200 and state["user"] == "alice" and len(state["items"]) == 4
    tab = Client(port)
    tab.cookie = alice.cookie  # a new tab or a reload sends the same cookie
    ids = [i["image_id"] for i in state["items"]]
    assert tab.items() == ids
    forged = Client(port)
    forged.cookie = alice.cookie[:-3] + "abc"
    assert forged.call("GET", "/api/review/state")[0] == 401


def test_writes_need_the_page_header_so_other_sites_cannot_post(server):
    _, port = server
    bob = Client(port)
    bob.login("bob")
    image = bob.items()[0]
    status, body = bob.call("POST", "/api/review/vote",
                            {"image_id": image, "decision": "accept"}, csrf=False)
    assert status == 403 and "review page" in body["error"]
    assert bob.call("POST", "/api/review/login", {"name": "bob", "password": PASSWORD},
                    csrf=False)[0] == 403


def test_a_vote_answer_tells_nothing_about_other_votes(server):
    cat, port = server
    carol, dave = Client(port), Client(port)
    carol.login("carol")
    dave.login("dave")
    first = carol.items()[0]
    status, body = carol.call("POST", "/api/review/vote",
                              {"image_id": first, "decision": "accept", "seen_ms": 900})
    assert status == 200 and set(body) == {"ok", "items"}
    assert dave.items()[0] == first  # he is handed the half-done image ...
    status, body = dave.call("POST", "/api/review/vote",
                             {"image_id": first, "decision": "reject", "reasons": ["blur"]})
    assert status == 200 and set(body) == {"ok", "items"}  # ... and learns nothing on voting
    assert "needs_adjudication" not in json.dumps(body) and "accept" not in json.dumps(body)
    # a vote on an image that no longer needs one is refused without saying why it is full
    erin = Client(port)
    erin.login("erin")
    status, body = erin.call("POST", "/api/review/vote", {"image_id": first, "decision": "accept"})
    assert status == 409 and body["error"].startswith("This image no longer needs your vote")
    assert rule_violations(cat) == []


def test_reject_without_reason_is_refused_and_nothing_is_stored(server):
    cat, port = server
    frank = Client(port)
    frank.login("frank")
    image = frank.items()[0]
    before = current_votes(cat).num_rows
    status, body = frank.call("POST", "/api/review/vote", {"image_id": image, "decision": "reject"})
    assert status == 409 and "reason" in body["error"]
    assert current_votes(cat).num_rows == before
    status, _ = frank.call("POST", "/api/review/vote",
                           {"image_id": image, "decision": "reject", "reasons": ["noise"],
                            "comment": "[Session expired - log in again](https://evil.example)"})
    assert status == 200
    mine = [v for v in current_votes(cat).to_pylist() if v["reviewer"] == "frank"]
    assert mine[0]["comment"] == "[Session expired - log in again](https://evil.example)"


def test_images_are_served_only_to_the_session_holding_them(server):
    cat, port = server
    gina, alice = Client(port), Client(port)
    gina.login("gina")
    alice.login("alice")
    image = gina.items()[0]
    status, raw = gina.call("GET", f"/api/review/bundle/{image}")
    meta, parts = unbundle(raw)
    assert status == 200 and "path" not in meta  # a reviewer never sees the file's path
    assert (meta["width"], meta["height"]) == (320, 240) and len(parts) == 1 + len(meta["crops"])
    assert all(p[:2] == b"\xff\xd8" for p in parts)  # the fit view and its crops, as JPEGs
    status, original = gina.call("GET", meta["original"])
    assert status == 200 and original[:2] == b"\xff\xd8"
    alice.call("GET", "/api/review/state")
    with cat.connect() as con:  # an image alice neither holds nor voted on
        other = con.execute(
            "SELECT image_id FROM images WHERE image_id NOT IN (SELECT image_id FROM "
            "review_leases WHERE reviewer = 'alice') AND image_id NOT IN (SELECT image_id FROM "
            "review_votes WHERE reviewer = 'alice') LIMIT 1").fetchone()[0]
    assert alice.call("GET", f"/api/review/bundle/{other}")[0] == 403
    assert alice.call("GET", f"/api/review/original/{other}")[0] == 403
    assert Client(port).call("GET", f"/api/review/bundle/{image}")[0] == 401
    assert gina.call("GET", f"/api/review/original/{image}/../../etc")[0] in (400, 404)


def test_media_files_need_a_live_session(server):
    _, port = server
    anon = Client(port)
    assert anon.call("GET", "/media/0123456789abcdef.jpg")[0] == 403
    root = Client(port)
    root.login("root")
    assert root.call("GET", "/media/0123456789abcdef.jpg")[0] == 404  # past the guard
    assert root.call("POST", "/api/review/logout", {})[0] == 200
    assert root.cookie is None
    stale = Client(port)
    stale.login("root")
    kept = stale.cookie
    stale.call("POST", "/api/review/logout", {})
    stale.cookie = kept  # a copy of the cookie taken before logout no longer works
    assert stale.call("GET", "/media/0123456789abcdef.jpg")[0] == 403
    assert stale.call("GET", "/api/review/state")[0] == 401


def test_missing_and_unreadable_files_are_recorded_and_skipped(server):
    cat, port = server
    held = next_images(cat, "dave", None, Rules(ahead=1))
    dave = Client(port)
    dave.login("dave")
    items = dave.items()
    assert items == [h.image_id for h in held]
    paths = {h.image_id: h.path for h in held}
    gone, broken = items[0], items[1]
    (cat.path.parent / "pool").joinpath(paths[gone].split("/")[-1]).unlink()
    with open(paths[broken], "r+b") as fh:
        fh.truncate(100)
    status, body = dave.call("GET", f"/api/review/bundle/{gone}")
    assert status == 410 and body["reason"] == "file_missing"
    status, body = dave.call("GET", f"/api/review/bundle/{broken}")
    assert status == 410 and body["reason"] in ("file_unreadable",)
    recorded = {e["image_id"]: e["reason"] for e in file_errors(cat)}
    assert recorded[gone] == "file_missing" and recorded[broken] == "file_unreadable"
    after = dave.items()
    assert gone not in after and broken not in after and len(after) >= 2  # the queue moved on


def test_a_disabled_reviewer_is_out_at_the_next_request(server):
    cat, port = server
    erin = Client(port)
    erin.login("erin")
    image = erin.items()[0]
    set_disabled(cat, "erin", actor="root")
    status, body = erin.call("POST", "/api/review/vote", {"image_id": image, "decision": "accept"})
    assert status == 401
    assert erin.login("erin")[0] == 401  # and cannot log in again
    set_disabled(cat, "erin", False, actor="root")


def test_failed_logins_slow_that_name_from_that_address_only(server):
    _, port = server
    guesser = Client(port, source="127.0.0.66")
    assert guesser.login("bob", "wrong guess 1")[0] == 401
    status, body = guesser.login("bob", "wrong guess 2")
    assert status == 401 and body["retry_after"] == 30
    status, body = guesser.login("bob", PASSWORD)  # even the right password waits
    assert status == 429 and "try again in" in body["error"]
    owner = Client(port, source="127.0.0.7")  # bob himself, at his own desk
    assert owner.login("bob")[0] == 200


def test_a_login_flood_is_answered_busy_not_queued(server):
    _, port = server
    answers = []

    def attempt(i: int) -> None:
        client = Client(port, source=f"127.0.1.{i + 1}")
        answers.append(client.login(f"nobody{i}", "wrong password")[0])

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(answers) <= {401, 503} and 503 in answers  # 1 check running + 4 waiting, at most
