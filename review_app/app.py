"""The Streamlit pages of `hfaid review` (served by review_app/server.py): navigation by the
role the catalog gives the session's account now."""

from __future__ import annotations

import importlib

import streamlit as st

from review_app import admin_pages, dashboard_page, login_page, review_page
from review_app.context import context, current_user

# Less padding above the page: the review screen (image, 1:1 crops, keys) fits 1440x900.
COMPACT = "<style>[data-testid='stMainBlockContainer']{padding-top:3.5rem;padding-bottom:0}</style>"


def _study_pages(admin: bool, name: str) -> list:
    """The selection engineer's metric-study pages, when that module is installed."""
    try:
        study = importlib.import_module("review_app.study_page")
    except ImportError:
        return []

    def study_page() -> None:
        study.render_study_page(context().catalog, name)

    def study_results() -> None:
        study.render_study_results(context().catalog)

    pages = [st.Page(study_page, title="Study", url_path="study")]
    if admin and hasattr(study, "render_study_results"):
        pages.append(st.Page(study_results, title="Study results", url_path="study-results"))
    return pages


def main() -> None:
    st.set_page_config(page_title="hfaid review", layout="wide")
    st.html(COMPACT)
    user = current_user()
    if user is None:
        nav = st.navigation(
            [st.Page(login_page.render, title="Log in", url_path="login")], position="hidden"
        )
    else:
        sections = {
            "Review": [
                st.Page(review_page.render, title="Review", url_path="review", default=True),
                st.Page(dashboard_page.render, title="Dashboard", url_path="dashboard"),
            ],
        }
        study = _study_pages(user.is_admin, user.name)
        if study:
            sections["Study"] = study
        if user.is_admin:
            sections["Admin"] = [
                st.Page(admin_pages.render_adjudication, title="Adjudication",
                        url_path="adjudication"),
                st.Page(admin_pages.render_files, title="Unreadable files", url_path="files"),
                st.Page(admin_pages.render_accounts, title="Accounts", url_path="accounts"),
                st.Page(admin_pages.render_audit, title="Audit log", url_path="audit"),
            ]
        sections[f"Signed in as {user.name}"] = [
            st.Page(login_page.logout, title="Log out", url_path="logout")
        ]
        nav = st.navigation(sections, position="top")
    nav.run()


main()
