"""The review app in Debian Chromium (Playwright) against a real `hfaid review` server."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from db.review import current_votes, record_vote, rule_violations, vote_summary
from tests.conftest import chromium_path
from tests.review_fixtures import PASSWORD, build_review_catalog

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CAPTION = re.compile(r"image ([0-9a-f]{12})")
REVIEWERS = ["alice", "bob", "carol", "dave", "erin"]
ADMINS = ["root", "boss"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(catalog_path: Path, port: int, log: Path) -> subprocess.Popen:
    """`hfaid review` as a user would start it; returns once the server answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfaid.cli", "review", "--port", str(port), "--stage-input",
         "ingest", "--catalog", str(catalog_path)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hfaid review exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("hfaid review did not start within 90 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed")
    folder = tmp_path_factory.mktemp("review-browser")
    cat = build_review_catalog(folder, 12, REVIEWERS, ADMINS)
    port = free_port()
    proc = start_server(cat.path, port, folder / "server.log")
    yield cat, f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user would stop it
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make():
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(45_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def login(page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Undo last vote").wait_for()  # the Review page is up


def shown_image(page) -> str:
    page.get_by_role("button", name="Accept").wait_for()
    text = page.get_by_text(CAPTION).first.inner_text()
    return CAPTION.search(text).group(1)


def vote(page, label: str) -> str:
    """Click Accept/Reject and wait until the next image (or the end) is on screen."""
    before = shown_image(page)
    page.get_by_role("button", name=label).click()
    page.wait_for_function(
        "prev => { const t = document.body.innerText; return t.includes('Nothing left') || "
        "((t.match(/image ([0-9a-f]{12})/) || [])[1] || prev) !== prev; }",
        arg=before,
    )
    return before


def votes_on(cat, prefix: str) -> list[dict]:
    return [v for v in current_votes(cat).to_pylist() if v["image_id"].startswith(prefix)]


def status_of(cat, prefix: str) -> str | None:
    rows = [r for r in vote_summary(cat).to_pylist() if r["image_id"].startswith(prefix)]
    return rows[0]["status"] if rows else None


def test_two_reviewers_in_two_contexts_accept_one_image(server, new_page):
    cat, url = server
    alice, bob = new_page(), new_page()
    login(alice, url, "alice")
    login(bob, url, "bob")
    image = shown_image(alice)
    assert shown_image(bob) == image  # an image needs two votes, so both may hold it
    vote(alice, "Accept")
    assert status_of(cat, image) == "pending"
    # bob votes with the keyboard shortcut, which clicks the same button
    bob.get_by_text(CAPTION).first.click()  # focus the page, not an input
    bob.keyboard.press("a")
    bob.wait_for_function("p => !document.body.innerText.includes('image ' + p)", arg=image)
    assert status_of(cat, image) == "accepted"
    assert sorted(v["reviewer"] for v in votes_on(cat, image)) == ["alice", "bob"]


def test_split_goes_to_adjudication_and_an_admin_decides(server, new_page):
    cat, url = server
    carol, dave, root = new_page(), new_page(), new_page()
    login(carol, url, "carol")
    login(dave, url, "dave")
    image = shown_image(carol)
    assert shown_image(dave) == image
    vote(carol, "Accept")
    dave.get_by_text("1 blur").click()
    vote(dave, "Reject")
    assert status_of(cat, image) == "needs_adjudication"
    assert votes_on(cat, image)[1]["reasons"] == ["blur"]
    login(root, url, "root")
    root.get_by_role("link", name="Adjudication").click()
    root.get_by_text(f"image {image}").wait_for()
    root.get_by_role("button", name="Decide: accept").click()
    root.get_by_text("decided: accept").wait_for()
    row = next(r for r in vote_summary(cat).to_pylist() if r["image_id"].startswith(image))
    assert (row["status"], row["decided_by"]) == ("accepted", "root")


def test_without_login_no_image_and_no_vote(server, new_page):
    cat, url = server
    before = current_votes(cat).num_rows
    page = new_page()
    for path in ("", "/review", "/adjudication", "/dashboard"):
        page.goto(url + path)
        page.get_by_role("button", name="Log in").wait_for()
        assert page.get_by_role("button", name="Accept").count() == 0
        assert page.locator("img").count() == 0
    assert current_votes(cat).num_rows == before


def test_no_double_vote_by_reload_back_or_replay(server, new_page):
    cat, url = server
    page = new_page()
    login(page, url, "erin")
    first = vote(page, "Accept")
    page.go_back()
    page.reload()  # a reload is a new session: log in again
    login(page, url, "erin")
    assert shown_image(page) != first
    # replay: a double click on one Accept button counts once for the image it was shown with
    shown = shown_image(page)
    page.get_by_role("button", name="Accept").dblclick()
    page.wait_for_function("p => !document.body.innerText.includes('image ' + p)", arg=shown)
    page.wait_for_timeout(1500)
    mine = [v["image_id"] for v in current_votes(cat).to_pylist() if v["reviewer"] == "erin"]
    assert len(set(mine)) == len(mine)  # never two votes by erin on one image
    assert 2 <= len(mine) <= 3  # first, the double-clicked one, at most one more
    assert rule_violations(cat) == []


def test_an_admin_cannot_adjudicate_an_image_they_voted_on(server, new_page):
    cat, url = server
    with cat.connect() as con:  # an image nobody holds or voted on
        image = con.execute(
            "SELECT image_id FROM images WHERE image_id NOT IN (SELECT image_id FROM review_votes) "
            "AND image_id NOT IN (SELECT image_id FROM review_leases) ORDER BY image_id DESC"
        ).fetchone()[0]
    record_vote(cat, image, "boss", "reject", ["noise"])
    record_vote(cat, image, "carol", "accept")
    boss, alice = new_page(), new_page()
    login(boss, url, "boss")
    boss.get_by_role("link", name="Adjudication").click()
    boss.get_by_text("need another admin").wait_for()
    assert boss.get_by_text(f"image {image[:12]}").count() == 0
    assert boss.get_by_role("button", name="Decide: accept").count() == 0
    # a plain reviewer has no adjudication page at all
    login(alice, url, "alice")
    alice.get_by_role("link", name="Dashboard").wait_for()
    assert alice.get_by_role("link", name="Adjudication").count() == 0
    assert alice.get_by_role("button", name="Decide: accept").count() == 0
    assert status_of(cat, image[:12]) == "needs_adjudication"
