"""The review app in Debian Chromium (Playwright) against a real `hfaid review` server: keys
really pressed, clicks really made, and every vote checked in the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.accounts import list_reviewers, set_disabled
from db.review import NotNeeded, Rules, file_errors, next_images, record_vote, release
from db.review_stats import current_votes, vote_summary
from hfaid.cli import main as hfaid
from tests.conftest import chromium_path, write_photo_pool
from tests.review_fixtures import (
    browser_login,
    build_review_catalog,
    component_frame,
    free_port,
    start_server,
    stop_server,
    wait_in_component,
)

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REVIEWERS = ["kim", "lee", "mia", "ned", "oli", "pia", "quinn", "rae", "sam", "tom", "uma"]
ADMINS = ["root", "boss"]
MARKDOWN = "[Session expired - log in again](https://evil.example)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("Debian chromium is not installed")
    folder = tmp_path_factory.mktemp("review-browser")
    cat = build_review_catalog(folder, 60, REVIEWERS, ADMINS, size=(400, 270))
    with cat.connect() as con:  # a selection put these 60 images in the review queue
        con.execute("INSERT INTO stage_outcomes (image_id, stage, status) "
                    "SELECT image_id, 'review_queue', 'pass' FROM images")
    # and a 12 MP photo outside the queue, for the admins' pixel-peeping
    big = folder / "big"
    write_photo_pool(big, 1, size=(4000, 3000), quality=92)
    assert hfaid(["ingest", str(big), "--workers", "1", "--catalog", str(cat.path)]) == 0
    port = free_port()
    proc = start_server(cat.path, port, folder / "server.log", stage_input="review_queue")
    yield cat, f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser):
    contexts = []

    def make(scale: float = 1):
        ctx = browser.new_context(viewport={"width": 1440, "height": 900},
                                  device_scale_factor=scale)
        ctx.set_default_timeout(45_000)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


frame = component_frame
login = browser_login


def shown(page, timeout: float = 45_000) -> str:
    """The image painted on screen now (waits for one)."""
    f = frame(page)
    f.wait_for_function("() => document.body.dataset.image", timeout=timeout)
    return f.evaluate("() => document.body.dataset.image")


def next_image(page, before: str) -> str:
    f = frame(page)
    f.wait_for_function("prev => document.body.dataset.image !== prev", arg=before)
    return f.evaluate("() => document.body.dataset.image")


def settle(page) -> None:
    """Wait out the 400 ms in which a key right after a new image is ignored."""
    page.wait_for_timeout(450)


def vote_key(page, key: str, current: str) -> str:
    """Press a vote key on the image on screen like a person (after looking); the next one."""
    settle(page)
    page.keyboard.press(key)
    return next_image(page, current)


def free(cat, image_id: str) -> list[str]:
    """Make the holders of an image (reviewers of earlier tests) let go of it, as a logout does;
    returns who held it."""
    with cat.connect() as con:
        holders = [name for (name,) in con.execute(
            "SELECT reviewer FROM review_leases WHERE image_id = ?", [image_id]).fetchall()]
    for name in holders:
        release(cat, name)
    return holders


def vote_freed(cat, image_id: str, reviewer: str, decision: str,
               reasons: list[str] | None = None) -> None:
    """Vote as another reviewer once the image's holders let go of it. A page still open on the
    server may lease it again between the release and the vote (images with one vote go out
    first), so that is retried a few times; a vote the rule refuses for good still fails."""
    held_by: list[list[str]] = []
    for _ in range(5):
        held_by.append(free(cat, image_id))
        try:
            record_vote(cat, image_id, reviewer, decision, reasons)
            return
        except NotNeeded:
            pass
    votes = [v for v in current_votes(cat).to_pylist() if v["image_id"] == image_id]
    raise AssertionError(f"{reviewer} could not vote on {image_id[:12]}: held by {held_by}, "
                         f"votes {votes}")


def decisions(cat, image_id: str) -> list[str]:
    return [v["decision"] for v in current_votes(cat).to_pylist() if v["image_id"] == image_id]


def make_case(cat, image_id: str, voters: tuple[str, str]) -> None:
    """Give the image two votes that disagree, counting the one an earlier test may have cast
    (images with one vote go out first)."""
    earlier = decisions(cat, image_id)
    if not earlier:
        vote_freed(cat, image_id, voters[0], "accept")
        record_vote(cat, image_id, voters[1], "reject", ["noise"])
    elif len(earlier) == 1:
        opposite = "accept" if earlier == ["reject"] else "reject"
        vote_freed(cat, image_id, voters[0], opposite, ["noise"] if opposite == "reject" else None)


def walk_to(page, image_id: str) -> None:
    """Press N on the adjudication page until `image_id` is the case on screen."""
    current = shown(page, timeout=90_000)
    for _ in range(12):
        if current == image_id:
            return
        page.keyboard.press("n")
        current = next_image(page, current)
    raise AssertionError(f"case {image_id[:8]} not found")


def stored(cat, name: str) -> dict[str, dict]:
    return {v["image_id"]: v for v in current_votes(cat).to_pylist() if v["reviewer"] == name}


def wait_stored(cat, name: str, count: int, page) -> dict[str, dict]:
    for _ in range(100):
        votes = stored(cat, name)
        if len(votes) >= count:
            return votes
        page.wait_for_timeout(100)
    return stored(cat, name)


def test_twenty_votes_by_keyboard_only_are_stored_as_pressed(server, new_context):
    cat, url = server
    page = new_context().new_page()
    login(page, url, "kim")
    expected: dict[str, tuple] = {}
    skipped, undone = [], []
    # (digits, comment, key): reasons by digit, a comment typed after C and left with Esc
    plan = [((), None, "a"), (("2",), None, "r"), ((), "sharp, lovely", "a"),
            (("1", "3"), None, "r"), ((), None, "s"), ((), None, "a"),
            (("5",), "looks upscaled", "r"), ((), None, "a"), ((), None, "a"), (("9",), None, "r")]
    plan += [((), None, "a"), (("4", "4", "6"), None, "r")] * 5 + [((), None, "a")]
    current = shown(page)
    tags = {"1": "blur", "2": "noise", "3": "jpeg_artifacts", "4": "oversharpening",
            "5": "upscaled", "6": "watermark_text", "9": "duplicate"}
    for i, (digits, comment, key) in enumerate(plan):
        settle(page)
        for d in digits:
            page.keyboard.press(d)
        if comment:
            page.keyboard.press("c")
            page.keyboard.type(comment)
            page.keyboard.press("Escape")  # leaves the box: the next key is a vote again
        reasons = sorted({tags[d] for d in digits if digits.count(d) % 2})  # 4,4 toggles off
        page.keyboard.press(key)
        if key == "s":
            skipped.append(current)
        else:
            expected[current] = ("accept" if key == "a" else "reject", reasons, comment)
        current = next_image(page, current)
        if i == 7:  # U: take the last vote back; the image returns and is voted again
            settle(page)
            page.keyboard.press("u")
            back = next_image(page, current)
            assert back == list(expected)[-1]
            undone.append(back)
            settle(page)
            page.keyboard.press("2")
            page.keyboard.press("r")
            expected[back] = ("reject", ["noise"], None)
            current = next_image(page, back)
    votes = wait_stored(cat, "kim", len(expected), page)
    assert len(expected) == 20
    assert {i: (v["decision"], sorted(v["reasons"]), v["comment"]) for i, v in votes.items()} == {
        i: (d, r, c) for i, (d, r, c) in expected.items()}
    with cat.connect() as con:
        skips = con.execute("SELECT image_id FROM review_skips WHERE reviewer = 'kim'").fetchall()
        taken_back = con.execute("SELECT image_id FROM review_votes WHERE reviewer = 'kim' "
                                 "AND undone_at IS NOT NULL").fetchall()
    assert [s for (s,) in skips] == skipped and [t for (t,) in taken_back] == undone
    # true pixels: the 400x270 image is shown at 400x270, its crop at 270x270
    f = frame(page)
    assert f.evaluate("() => { const r = document.querySelector('img.fit')"
                      ".getBoundingClientRect(); return [r.width, r.height]; }") == [400, 270]
    assert f.evaluate("() => [...document.querySelectorAll('img.crop')].map(i => "
                      "[i.getBoundingClientRect().width, i.getBoundingClientRect().height])"
                      ) == [[270, 270]]
    timings = f.evaluate("() => window.hfaidTimings.map(t => t.ms)")
    assert len(timings) >= 20  # painted-after-key measurements exist for the benchmark


def test_reload_and_new_tabs_keep_the_session_and_logout_ends_it(server, new_context):
    _, url = server
    ctx = new_context()
    page = ctx.new_page()
    login(page, url, "lee")
    first = shown(page)
    page.reload()
    assert shown(page) == first  # still logged in, same image
    page.goto(url + "/dashboard")
    page.wait_for_selector("text=Dashboard")
    tab = ctx.new_page()
    tab.goto(url)
    assert shown(tab) == first  # a new tab is the same session
    other = new_context().new_page()
    other.goto(url)
    wait_in_component(other, "input#name")  # another browser is not
    page.get_by_text("Signed in as lee").click()
    page.locator("a[href$='/logout']").click()
    wait_in_component(page, "input#name")
    tab.keyboard.press("a")  # the other tab's next action finds the session gone
    wait_in_component(tab, "text=Your session has ended")


def test_the_second_reviewer_sees_no_hint_of_the_first_vote(server, new_context):
    cat, url = server
    ned = new_context().new_page()
    answers = []
    ned.on("response", lambda r: answers.append(r) if "/api/review/" in r.url else None)
    login(ned, url, "ned")
    image = shown(ned)  # an image with a vote already (kim's) comes first; else mia votes now
    first = [v for v in current_votes(cat).to_pylist() if v["image_id"] == image]
    if not first:
        record_vote(cat, image, "mia", "reject", ["blur"], "mia thinks it is blurry")
        first = [v for v in current_votes(cat).to_pylist() if v["image_id"] == image]
    (first,) = first
    answers.clear()
    ned.reload()  # whatever the page loads now, the first vote exists
    assert shown(ned) == image
    before = frame(ned).inner_text("body")
    vote_key(ned, "a", image)
    after = frame(ned).inner_text("body")
    wait_stored(cat, "ned", 1, ned)
    for _ in range(100):  # the vote's answer arrives just after its commit
        if any("/api/review/vote" in r.url for r in answers):
            break
        ned.wait_for_timeout(100)
    bodies = [json.dumps(r.json()) for r in answers if "json" in r.headers.get("content-type", "")]
    urls = [r.url for r in answers]
    assert any("/api/review/state" in u for u in urls), urls  # what the reload loaded
    assert any("/api/review/vote" in u for u in urls), urls  # and the vote's answer
    for text in [before, after, *bodies]:  # nothing ned sees or receives tells him more
        assert first["reviewer"] not in text
        assert not first["comment"] or first["comment"] not in text
        for word in ("needs_adjudication", "accepted", "rejected", "split", "consensus"):
            assert word not in text
    if first["decision"] == "reject":
        assert not any("reject" in b for b in bodies)
    assert "Vote saved." in after
    status = [r["status"] for r in vote_summary(cat).to_pylist() if r["image_id"] == image]
    assert status == ["accepted" if first["decision"] == "accept" else "needs_adjudication"]


def test_a_double_click_or_double_key_is_one_vote(server, new_context):
    cat, url = server
    page = new_context().new_page()
    login(page, url, "pia")
    first = shown(page)
    settle(page)
    frame(page).locator("button.accept").dblclick()
    second = next_image(page, first)
    page.wait_for_timeout(800)
    settle(page)
    page.keyboard.press("a")
    page.keyboard.press("a")  # a bounce 30 ms later
    next_image(page, second)
    page.wait_for_timeout(1000)
    assert set(wait_stored(cat, "pia", 2, page)) == {first, second}


def test_focus_never_gets_stuck_and_the_keys_are_one_press_away(server, new_context):
    cat, url = server
    page = new_context().new_page()
    login(page, url, "sam")
    first = shown(page)
    page.mouse.click(700, 30)  # focus on the page around the component, not in it
    page.keyboard.press("?")
    wait_in_component(page, ".help:not([hidden])")
    page.keyboard.press("Escape")
    vote_key(page, "a", first)
    assert first in wait_stored(cat, "sam", 1, page)


def test_a_missing_file_is_recorded_and_the_queue_moves_on(server, new_context):
    cat, url = server
    held = next_images(cat, "oli", "review_queue", Rules(ahead=3))
    gone = held[0]
    Path(gone.path).unlink()
    page = new_context().new_page()
    login(page, url, "oli")
    assert shown(page) == held[1].image_id
    wait_in_component(page, "text=file_missing")
    assert [(e["image_id"], e["reason"]) for e in file_errors(cat)] == [(gone.image_id,
                                                                        "file_missing")]
    admin = new_context().new_page()
    login(admin, url, "root")
    admin.goto(url + "/files")
    admin.get_by_text("1 image(s) left the review queue").wait_for()


def test_a_disabled_admin_can_do_nothing_more(server, new_context):
    cat, url = server
    page = new_context().new_page()
    login(page, url, "boss")
    page.goto(url + "/accounts")
    page.get_by_label("New username").fill("mallory")
    page.get_by_label("Initial password").fill("a long enough password")
    set_disabled(cat, "boss", actor="root")  # another admin disables boss meanwhile
    page.get_by_role("button", name="Add").click()
    wait_in_component(page, "input#name")  # back at the login page
    assert "mallory" not in {r.name for r in list_reviewers(cat)}
    set_disabled(cat, "boss", False, actor="root")


def test_an_admin_who_voted_and_undid_cannot_adjudicate(server, new_context):
    cat, url = server
    page = new_context().new_page()
    login(page, url, "root")
    image = shown(page)
    second = vote_key(page, "a", image)
    assert vote_key(page, "u", second) == image
    page.get_by_text("Signed in as root").click()
    page.locator("a[href$='/logout']").click()  # frees root's leases
    wait_in_component(page, "input#name")
    make_case(cat, image, ("tom", "uma"))
    login(page, url, "root")
    page.goto(url + "/adjudication")
    f = frame(page)
    f.wait_for_selector("text=only another admin can decide")
    cases = f.evaluate("() => fetch('/api/review/cases').then(r => r.json())")
    assert image not in {c["image_id"] for c in cases["cases"]}
    answer = f.evaluate(
        "id => fetch('/api/review/decide', {method: 'POST', headers: {'X-Hfaid': '1', "
        "'Content-Type': 'application/json'}, body: JSON.stringify({image_id: id, "
        "decision: 'accept'})}).then(r => r.json().then(b => [r.status, b.error]))", image)
    assert answer[0] == 409 and "undone vote counts" in answer[1]
    assert [r["status"] for r in vote_summary(cat).to_pylist() if r["image_id"] == image] == [
        "needs_adjudication"]


def test_comments_are_text_and_admins_decide_with_keys(server, new_context):
    cat, url = server
    quinn = new_context().new_page()
    login(quinn, url, "quinn")
    image = shown(quinn)
    # Images with one vote go out first, so an earlier test's vote may be on it already: quinn
    # disagrees with that one, or a second reviewer disagrees with quinn, and it is a case.
    earlier = decisions(cat, image)
    settle(quinn)
    quinn.keyboard.press("c")
    quinn.keyboard.type(MARKDOWN)
    quinn.keyboard.press("Escape")
    if earlier == ["reject"]:
        vote_key(quinn, "a", image)
    else:
        quinn.keyboard.press("6")
        vote_key(quinn, "r", image)
    wait_stored(cat, "quinn", 1, quinn)
    make_case(cat, image, ("rae", "sam"))
    admin = new_context().new_page()
    login(admin, url, "boss")
    admin.goto(url + "/adjudication")
    f = frame(admin)
    walk_to(admin, image)  # other tests left cases too
    f.get_by_text(MARKDOWN, exact=True).wait_for()  # the comment, as typed
    assert f.locator("a[href*='evil.example']").count() == 0
    assert admin.locator("a[href*='evil.example']").count() == 0
    settle(admin)
    admin.keyboard.press("r")
    f.wait_for_selector("text=(U undoes)")
    row = next(r for r in vote_summary(cat).to_pylist() if r["image_id"] == image)
    assert (row["status"], row["decided_by"]) == ("rejected", "boss")
    admin.keyboard.press("u")  # taken back inside the window: waiting again
    f.wait_for_selector("text=taken back")
    row = next(r for r in vote_summary(cat).to_pylist() if r["image_id"] == image)
    assert row["status"] == "needs_adjudication"
    admin.goto(url + "/audit")
    admin.get_by_text("Audit log").wait_for()
    assert admin.locator("a[href*='evil.example']").count() == 0


def test_pixels_are_true_at_device_pixel_ratio_2_and_above_the_fold(server, new_context):
    cat, url = server
    with cat.connect() as con:
        big = con.execute("SELECT image_id FROM images WHERE width = 4000").fetchone()[0]
    record_vote(cat, big, "tom", "accept")
    record_vote(cat, big, "uma", "reject", ["blur"])
    page = new_context(scale=2).new_page()
    login(page, url, "root")
    page.goto(url + "/adjudication")
    f = frame(page)
    walk_to(page, big)
    crops = f.evaluate("() => [...document.querySelectorAll('img.crop')].map(i => { "
                       "const r = i.getBoundingClientRect(); return [i.naturalWidth, r.width, "
                       "r.top + window.frameElement.getBoundingClientRect().top + r.height]; })")
    assert len(crops) == 3
    for natural, css, bottom in crops:
        assert natural == 320 and css == 160  # one image pixel per device pixel
        assert bottom <= 900  # the whole crop is above the fold
    fit = f.evaluate("() => { const i = document.querySelector('img.fit'); "
                     "return [i.naturalWidth, i.getBoundingClientRect().width]; }")
    assert fit[1] <= fit[0] / 2  # never more than one fit pixel per device pixel
    f.locator("img.fit").click(position={"x": 10, "y": 10})  # zoom where the pointer is
    assert f.evaluate("() => getComputedStyle(document.querySelector('.loupe'))"
                      ".backgroundSize") == "2000px 1500px"  # 100%: 4000 px on a 2x screen
    page.keyboard.press("z")
    assert f.evaluate("() => getComputedStyle(document.querySelector('.loupe'))"
                      ".backgroundSize") == "4000px 3000px"  # 200%
    page.keyboard.press("Escape")
    assert f.locator(".loupe").count() == 0


def test_without_a_session_no_image_is_served(server, new_context):
    cat, url = server
    page = new_context().new_page()
    for path in ("", "/review", "/adjudication", "/dashboard", "/files"):
        page.goto(url + path)
        wait_in_component(page, "input#name")
        assert page.locator("img").count() == 0
    with cat.connect() as con:
        image = con.execute("SELECT image_id FROM images LIMIT 1").fetchone()[0]
    for path in (f"/api/review/bundle/{image}", f"/api/review/original/{image}",
                 "/media/0123456789abcdef0123456789abcdef.jpg"):
            assert page.request.get(url + path).status in (401, 403)
