"""The review app's pages through Streamlit's AppTest, against a real catalog file, as a browser
without a session cookie sees them (logged-in pages are driven in a real browser:
tests/test_review_browser.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db.review_stats import current_votes
from review_app.plain import plain
from tests.review_fixtures import build_review_catalog

APP = str(Path(__file__).resolve().parents[1] / "review_app" / "app.py")
TIMEOUT = 60  # this shared 2-core machine is slow; AppTest's default is 3 s


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("review-app")
    return build_review_catalog(folder, 6, ["alice", "bob"], ["root", "boss"]).path


@pytest.fixture
def catalog_env(template, tmp_path, monkeypatch):
    from db.catalog import Catalog

    path = tmp_path / "catalog.duckdb"
    shutil.copy(template, path)
    monkeypatch.setenv("HFAID_CATALOG", str(path))
    monkeypatch.setenv("HFAID_REVIEW_STAGE_INPUT", "ingest")
    monkeypatch.delenv("HFAID_CONFIG", raising=False)
    return Catalog(path, lock_timeout_s=30)


def page(module: str, func: str) -> AppTest:
    return AppTest.from_string(
        f"from review_app import {module}\n{module}.{func}()\n", default_timeout=TIMEOUT
    ).run()


def test_without_a_session_cookie_the_app_is_the_login_page(catalog_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["hfaid review: log in"]
    assert not at.get("image") and not at.button
    assert len(at._registered_pages) == 1  # no review, dashboard or admin page is reachable


@pytest.mark.parametrize(
    ("module", "func"),
    [("review_page", "render"), ("dashboard_page", "render"),
     ("admin_pages", "render_adjudication"), ("admin_pages", "render_accounts"),
     ("admin_pages", "render_files"), ("admin_pages", "render_audit")],
)
def test_every_page_refuses_a_browser_without_a_session(catalog_env, module, func):
    at = page(module, func)
    assert "Log in first" in at.warning[0].value
    assert not at.get("image") and not at.button and not at.dataframe
    assert current_votes(catalog_env).num_rows == 0


def test_plain_text_escapes_everything_markdown_acts_on():
    text = "[Session expired](https://evil.example) *x* _y_ `z` <b>h</b> $m$ :red[r]"
    escaped = plain(text)
    assert "\\[" in escaped and "\\(" in escaped and "\\*" in escaped and "\\$" in escaped
    assert escaped.replace("\\", "") == text
