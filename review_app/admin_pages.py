"""Admin pages: adjudication (the component), unreadable files, accounts, the audit log. Every
action names the admin, whose role and enabled flag db/ reads again from the catalog."""

from __future__ import annotations

import streamlit as st

from db.accounts import (
    ROLES,
    AccountError,
    add_reviewer,
    list_reviewers,
    reset_password,
    set_disabled,
)
from db.review import REASONS, ReviewError, file_errors, requeue
from db.review_stats import audit_log
from review_app.component import review_component
from review_app.context import context, require_user
from review_app.plain import plain


def render_adjudication() -> None:
    require_user(admin=True)
    cfg = context().config.review
    review_component(
        "adjudicate", key="adjudicate", reasons=[list(r) for r in REASONS],
        guard_ms=cfg.repeat_guard_ms, ahead=2,
    )


def render_files() -> None:
    ctx = context()
    admin = require_user(admin=True)
    st.title("Unreadable files")
    rows = file_errors(ctx.catalog)
    if not rows:
        st.success("Every queued file could be shown.")
        return
    st.write(f"{len(rows)} image(s) left the review queue because their file could not be shown.")
    st.dataframe(
        [{**r, "image_id": r["image_id"][:12]} for r in rows], hide_index=True,
        column_config={"decided_at": "when"},
    )
    with st.form("requeue"):
        target = st.selectbox("Put back in the queue (after fixing the file)",
                              [r["image_id"] for r in rows], format_func=lambda i: i[:12])
        if st.form_submit_button("Requeue"):
            try:
                requeue(ctx.catalog, target, admin.name)
                st.success(plain(f"{target[:12]} is back in the queue."))
            except ReviewError as exc:
                st.error(plain(exc))


def render_accounts() -> None:
    ctx = context()
    admin = require_user(admin=True)
    st.title("Accounts")
    accounts = list_reviewers(ctx.catalog)
    st.dataframe(
        [{"name": r.name, "role": r.role, "disabled": r.disabled} for r in accounts],
        hide_index=True,
    )
    with st.form("add-account", clear_on_submit=True):
        st.markdown("**Add a reviewer**")
        name = st.text_input("New username")
        role = st.selectbox("Role", ROLES)
        password = st.text_input("Initial password", type="password")
        if st.form_submit_button("Add"):
            try:
                add_reviewer(ctx.catalog, name.strip(), role, password, actor=admin.name)
                st.success(plain(f"added {name.strip()}"))
            except AccountError as exc:
                st.error(plain(exc))
    with st.form("change-account"):
        st.markdown("**Change an account**")
        target = st.selectbox("Account", [r.name for r in accounts])
        action = st.radio("Action", ["disable", "enable", "reset password"], horizontal=True)
        new_password = st.text_input("New password (for reset)", type="password")
        if st.form_submit_button("Apply") and target:
            try:
                if action == "reset password":
                    reset_password(ctx.catalog, target, new_password, actor=admin.name)
                else:
                    set_disabled(ctx.catalog, target, action == "disable", actor=admin.name)
                ctx.sessions.forget(target)  # its open pages learn it at their next request
                st.success(plain(f"{action}: {target}"))
            except AccountError as exc:
                st.error(plain(exc))


def render_audit() -> None:
    ctx = context()
    require_user(admin=True)
    st.title("Audit log")
    st.caption("Latest 500 events: votes, skips, undos, decisions, file errors, logins, accounts.")
    st.dataframe(
        [{**e, "image_id": (e["image_id"] or "")[:12]} for e in audit_log(ctx.catalog, 500)],
        hide_index=True,
    )
