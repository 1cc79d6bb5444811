"""Take docs/REVIEWING.md's screenshots from the real app: a real `hfaid review` server on a small
catalog of real photos, driven by Chromium (Playwright) at 1440x900, saved as small PNGs here.

    PYTHONPATH=$PWD .venv/bin/python docs/img/screenshots.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from db.review import record_vote  # noqa: E402
from tests.conftest import chromium_path  # noqa: E402
from tests.review_fixtures import (  # noqa: E402
    COMPONENT,
    browser_login,
    build_review_catalog,
    component_frame,
    free_port,
    start_server,
    stop_server,
)


def save(page, name: str, **clip) -> None:
    """A screenshot as a palette PNG (a few hundred KB at most)."""
    raw = HERE / f"{name}.raw.png"
    page.screenshot(path=str(raw), **clip)
    Image.open(raw).convert("RGB").quantize(colors=192).save(HERE / f"{name}.png", optimize=True)
    raw.unlink()


login = browser_login


def frame(page):
    found = component_frame(page)
    found.wait_for_function("() => document.body.dataset.image !== undefined", timeout=60_000)
    return found


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="hfaid-shots-"))
    cat = build_review_catalog(folder, 12, ["alice", "bob"], ["admin"], size=(1600, 1200))
    with cat.connect() as con:
        images = [r[0] for r in con.execute("SELECT image_id FROM images ORDER BY image_id")
                  .fetchall()]
    split = images[-1]
    record_vote(cat, split, "alice", "accept", comment="fine detail on the tank, keep it")
    record_vote(cat, split, "bob", "reject", ["oversharpening", "jpeg_artifacts"],
                comment="halos around the handlebars; blocky sky in the corner")
    port = free_port()
    proc = start_server(cat.path, port, folder / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(),
                                         args=["--headless", "--no-sandbox"])
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(url)
            page.frame_locator(COMPONENT).get_by_label("Username").wait_for()
            save(page, "review-login", clip={"x": 0, "y": 0, "width": 720, "height": 420})
            login(page, url, "alice")
            f = frame(page)
            f.wait_for_function("() => document.body.dataset.image")
            for key in ("a",):  # one vote, so the history has a line
                page.wait_for_timeout(500)
                page.keyboard.press(key)
            page.wait_for_timeout(800)
            page.keyboard.press("4")
            page.keyboard.press("c")
            page.keyboard.type("halos along the roof edge")
            page.keyboard.press("Escape")
            page.wait_for_timeout(300)
            save(page, "review-page")
            page.keyboard.press("?")
            page.wait_for_timeout(300)
            save(page, "review-keys")
            page.keyboard.press("Escape")
            page.mouse.click(430, 330)  # zoom to 100% where the pointer is
            page.wait_for_timeout(600)
            save(page, "review-zoom")
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            login(page, url, "admin")
            page.goto(url + "/adjudication")
            f = frame(page)
            f.wait_for_function("() => document.body.dataset.image")
            page.wait_for_timeout(500)
            save(page, "review-adjudication")
            page.goto(url + "/dashboard")
            page.get_by_text("Agreement").wait_for()
            page.wait_for_timeout(500)
            save(page, "review-dashboard")
            browser.close()
    finally:
        stop_server(proc)
        shutil.rmtree(folder, ignore_errors=True)
    for png in sorted(HERE.glob("review-*.png")):
        print(f"{png.name}: {png.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
