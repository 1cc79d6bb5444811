"""Login and logout: the component posts the password to the API, which sets the session cookie."""

from __future__ import annotations

import streamlit as st

from db.accounts import end_session
from review_app.auth import COOKIE
from review_app.component import review_component
from review_app.context import context


def render() -> None:
    st.title("hfaid review: log in")
    review_component("login", key="login")


def logout() -> None:
    ctx = context()
    token = ctx.sessions.token(st.context.cookies.get(COOKIE))
    if token:  # ended here at once (its leases freed); the component then clears the cookie
        end_session(ctx.catalog, token)
        ctx.sessions.end(token)
    st.write("Logging out…")
    review_component("logout", key="logout")
