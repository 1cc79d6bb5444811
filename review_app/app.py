"""Entry point of `hfaid review`: builds the page navigation from the logged-in session's role."""

from __future__ import annotations

import importlib

import streamlit as st

from review_app import admin_pages, dashboard_page, login_page, review_page
from review_app.context import current_user


def _study_pages(admin: bool) -> list:
    """The selection engineer's metric-study pages, when that module is installed."""
    try:
        study = importlib.import_module("review_app.study_page")
    except ImportError:
        return []
    from review_app.context import context

    def study_page() -> None:
        study.render_study_page(context().catalog, st.session_state["user"])

    def study_results() -> None:
        study.render_study_results(context().catalog)

    pages = [st.Page(study_page, title="Study", url_path="study")]
    if admin and hasattr(study, "render_study_results"):
        pages.append(st.Page(study_results, title="Study results", url_path="study-results"))
    return pages


def main() -> None:
    st.set_page_config(page_title="hfaid review", layout="wide")
    user = current_user()
    if user is None:
        nav = st.navigation(
            [st.Page(login_page.render, title="Log in", url_path="login")], position="hidden"
        )
    else:
        admin = user[1] == "admin"
        sections = {
            "Review": [
                st.Page(review_page.render, title="Review", url_path="review", default=True),
                st.Page(dashboard_page.render, title="Dashboard", url_path="dashboard"),
            ],
        }
        study = _study_pages(admin)
        if study:
            sections["Study"] = study
        if admin:
            sections["Admin"] = [
                st.Page(
                    admin_pages.render_adjudication, title="Adjudication", url_path="adjudication"
                ),
                st.Page(admin_pages.render_accounts, title="Accounts", url_path="accounts"),
            ]
        sections[f"Signed in as {user[0]}"] = [
            st.Page(login_page.logout, title="Log out", url_path="logout")
        ]
        nav = st.navigation(sections)
    nav.run()


main()
