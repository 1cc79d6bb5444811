"""Login and logout: identity comes only from a verified password, kept in the session."""

from __future__ import annotations

import streamlit as st

from db.accounts import verify_login
from db.review import release
from review_app.context import context


def render() -> None:
    ctx = context()
    st.title("hfaid review: log in")
    with st.form("login"):
        name = st.text_input("Username")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    name = name.strip()
    wait = ctx.limiter.wait_s(name)
    if wait > 0:
        st.error(f"Too many failed logins for this name; try again in {wait:.0f} s.")
        return
    account = verify_login(ctx.catalog, name, password)
    if account is None:
        ctx.limiter.failed(name)
        st.error("Wrong username or password, or the account is disabled.")
        return
    ctx.limiter.succeeded(name)
    st.session_state.clear()  # nothing from before the login carries over
    st.session_state["user"] = account.name
    st.session_state["role"] = account.role
    st.rerun()


def logout() -> None:
    user = st.session_state.get("user")
    if user:
        release(context().catalog, user)  # the leased image goes back to the queue at once
    st.session_state.clear()
    st.rerun()
