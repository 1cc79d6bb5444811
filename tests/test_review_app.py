"""Every review-app page through Streamlit's AppTest, against a real catalog file."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db.accounts import list_reviewers
from db.images import images_passing
from db.review import adjudication_queue, current_votes, record_vote
from tests.review_fixtures import PASSWORD, build_review_catalog

APP = str(Path(__file__).resolve().parents[1] / "review_app" / "app.py")
HAS_STUDY = importlib.util.find_spec("review_app.study_page") is not None
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


def page(module: str, func: str, user: str | None = None, role: str = "reviewer") -> AppTest:
    at = AppTest.from_string(f"from review_app import {module}\n{module}.{func}()\n",
                             default_timeout=TIMEOUT)
    if user:
        at.session_state["user"] = user
        at.session_state["role"] = role
    return at.run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_login_page_verifies_the_password_then_shows_the_review_page(catalog_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.get("image") and not [b for b in at.button if b.label == "Accept"]
    at.text_input[0].input("alice")
    at.text_input[1].input("wrong password")
    at.button[0].click().run()
    assert "Wrong username or password" in at.error[0].value
    assert "user" not in at.session_state
    at.text_input[0].input("alice")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["user"] == "alice"
    assert button(at, "Accept") and at.get("image")


def test_failed_logins_are_rate_limited(catalog_env, tmp_path, monkeypatch):
    config = tmp_path / "hfaid.toml"
    config.write_text("[review]\nlogin_attempts = 2\nlogin_window_s = 600\n")
    monkeypatch.setenv("HFAID_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    for _ in range(2):
        at.text_input[0].input("bob")
        at.text_input[1].input("nope nope")
        at.button[0].click().run()
    at.text_input[0].input("bob")
    at.text_input[1].input(PASSWORD)  # even the right password waits out the window
    at.button[0].click().run()
    assert "Too many failed logins" in at.error[0].value
    assert "user" not in at.session_state


def test_review_page_votes_with_reasons_and_moves_on(catalog_env):
    at = page("review_page", "render", "alice")
    first = at.session_state["current"]
    assert len(at.get("image")) >= 1
    labels = [c.label for c in at.checkbox]
    assert labels[0] == "1 blur" and "9 duplicate" in labels
    at.checkbox[1].check()  # "2 noise"
    at.text_input(key=f"comment-{first}").input("grainy sky")
    button(at, "Reject").click().run()
    votes = current_votes(catalog_env).to_pylist()
    assert [(v["image_id"], v["reviewer"], v["decision"], v["reasons"]) for v in votes] == [
        (first, "alice", "reject", ["noise"])
    ]
    assert at.session_state["current"] not in (None, first)
    assert "1 votes" in at.sidebar.markdown[0].value


def test_review_page_undo_brings_the_image_back(catalog_env):
    at = page("review_page", "render", "alice")
    first = at.session_state["current"]
    button(at, "Accept").click().run()
    assert at.session_state["current"] != first
    button(at, "Undo last vote").click().run()
    assert at.session_state["current"] == first
    assert current_votes(catalog_env).num_rows == 0
    assert "undone" in at.info[0].value


def test_review_page_without_login_shows_nothing(catalog_env):
    at = page("review_page", "render")
    assert "Log in first" in at.warning[0].value
    assert not at.get("image") and not at.button


def test_review_page_when_the_queue_is_done(catalog_env):
    for img in images_passing(catalog_env, None)["image_id"].to_pylist():
        record_vote(catalog_env, img, "alice", "accept")
    at = page("review_page", "render", "alice")
    assert "Nothing left" in at.success[0].value


def test_dashboard_shows_states_agreement_and_disagreements(catalog_env):
    images = images_passing(catalog_env, None)["image_id"].to_pylist()
    record_vote(catalog_env, images[0], "alice", "accept")
    record_vote(catalog_env, images[0], "bob", "reject", ["blur"])
    record_vote(catalog_env, images[1], "alice", "accept")
    record_vote(catalog_env, images[1], "bob", "accept")
    at = page("dashboard_page", "render", "root", "admin")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["accepted"] == "1" and metrics["needs adjudication"] == "1"
    assert any("Cohen's kappa" in m.value for m in at.markdown)
    assert len(at.table) >= 3  # reviewers, per-reason kappa, disagreements, audit log


def test_adjudication_page_is_for_admins_who_did_not_vote(catalog_env):
    img = images_passing(catalog_env, None)["image_id"].to_pylist()[0]
    record_vote(catalog_env, img, "alice", "accept")
    record_vote(catalog_env, img, "root", "reject")
    at = page("admin_pages", "render_adjudication", "alice")
    assert "Admins only" in at.error[0].value
    at = page("admin_pages", "render_adjudication", "root", "admin")
    assert "need another admin" in at.info[0].value
    assert not [b for b in at.button if b.label.startswith("Decide")]
    at = page("admin_pages", "render_adjudication", "boss", "admin")
    button(at, "Decide: accept").click().run()
    assert adjudication_queue(catalog_env) == []
    assert "decided: accept" in at.success[0].value


def test_accounts_page_adds_and_disables(catalog_env):
    at = page("admin_pages", "render_accounts", "root", "admin")
    inputs = {t.label: t for t in at.text_input}
    inputs["New username"].input("carol")
    inputs["Initial password"].input("a good long password")
    next(b for b in at.button if b.label == "Add").click().run()
    assert "added carol" in at.success[0].value
    at.selectbox[1].select("bob")
    at.radio[0].set_value("disable")
    next(b for b in at.button if b.label == "Apply").click().run()
    accounts = {r.name: r for r in list_reviewers(catalog_env)}
    assert accounts["carol"].role == "reviewer" and accounts["bob"].disabled


def pages(at: AppTest) -> dict[str, str]:
    # AppTest.switch_page only knows file pages; ours are callables registered by st.navigation.
    return {info.get("url_pathname"): h for h, info in at._registered_pages.items()}


def goto(at: AppTest, url_path: str) -> AppTest:
    at._page_hash = pages(at)[url_path]
    return at.run()


def test_reviewers_do_not_get_admin_pages(catalog_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["user"] = "alice"
    at.session_state["role"] = "reviewer"
    at.run()
    assert {"", "dashboard", "logout"} <= set(pages(at))  # "" is the default page, Review
    assert not {"adjudication", "accounts", "study-results"} & set(pages(at))
    assert ("study" in pages(at)) == HAS_STUDY


def test_navigation_by_role_and_logout(catalog_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["user"] = "root"
    at.session_state["role"] = "admin"
    at.run()
    assert button(at, "Accept")  # the default page is Review
    assert {"", "dashboard", "adjudication", "accounts", "logout"} <= set(pages(at))
    if HAS_STUDY:  # the selection engineer's study pages, wired into our navigation
        assert {"study", "study-results"} <= set(pages(at))
        goto(at, "study")
        assert not at.exception
        goto(at, "study-results")
        assert not at.exception
    goto(at, "dashboard")
    assert any(m.label == "unvoted" for m in at.metric)
    goto(at, "logout")
    assert "user" not in at.session_state
    assert [t.label for t in at.text_input] == ["Username", "Password"]
