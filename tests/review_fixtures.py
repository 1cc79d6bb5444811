"""Shared by the review tests and benchmark: a catalog with real photos and reviewer accounts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from db.accounts import add_reviewer
from db.catalog import Catalog
from tests.conftest import write_photo_pool

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]


def build_review_catalog(folder: Path, images: int, reviewers: list[str],
                         admins: list[str], size: tuple[int, int] = (320, 240)) -> Catalog:
    """Ingest `images` real photos into folder/catalog.duckdb and create the accounts.

    Extra accounts copy the first one's argon2 hash (same password): hashing is slow on purpose.
    """
    from hfaid.cli import main

    write_photo_pool(folder / "pool", images, size=size)
    cat = Catalog(folder / "catalog.duckdb", lock_timeout_s=30)
    code = main(["ingest", str(folder / "pool"), "--workers", "1", "--catalog", str(cat.path)])
    if code != 0:
        raise RuntimeError(f"ingest failed with exit {code}")
    names = [(n, "reviewer") for n in reviewers] + [(n, "admin") for n in admins]
    add_reviewer(cat, names[0][0], names[0][1], PASSWORD)
    with cat.connect() as con:
        for name, role in names[1:]:
            con.execute(
                "INSERT INTO reviewers (name, role, password_hash) "
                "SELECT ?, ?, password_hash FROM reviewers WHERE name = ?",
                [name, role, names[0][0]],
            )
    return cat


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(catalog_path: Path, port: int, log: Path, *extra: str,
                 stage_input: str = "ingest", root: Path = ROOT) -> subprocess.Popen:
    """`hfaid review` as a user would start it (from `root`'s code); returns once it answers."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfaid.cli", "review", "--port", str(port), "--stage-input",
         stage_input, "--catalog", str(catalog_path), *extra],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=root, env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hfaid review exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("hfaid review did not start within 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user would stop it; killed if it does not stop."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---- driving the review page in a browser (Playwright) ---------------------------------------
COMPONENT = "iframe[title='review_app.component.hfaid_review']"


def browser_login(page, url: str, name: str) -> None:
    """Log in through the page's own form, as a reviewer does."""
    page.goto(url)
    form = page.frame_locator(COMPONENT)
    form.get_by_label("Username").fill(name)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()
    page.wait_for_selector(f"text=Signed in as {name}")


def component_frame(page):
    """The component's frame (its keys, images and buttons live there)."""
    page.wait_for_selector(COMPONENT)
    return [f for f in page.frames if "hfaid_review" in f.url][-1]


def wait_in_component(page, selector: str, timeout: float = 45_000) -> None:
    """Wait until the component shows `selector`, finding its frame again on every try: a
    logout or reload replaces the frame while the wait runs."""
    page.frame_locator(COMPONENT).last.locator(selector).first.wait_for(timeout=timeout)
