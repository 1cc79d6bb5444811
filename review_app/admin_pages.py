"""Admin pages: the adjudication queue and reviewer accounts."""

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
from db.review import ReviewError, adjudicate, adjudication_queue, image_info
from review_app.context import context, require_user


def _decide(image_id: str, decision: str) -> None:
    ctx = context()
    admin, _ = require_user(admin=True)
    note = st.session_state.get(f"note-{image_id}", "").strip()
    try:
        adjudicate(ctx.catalog, image_id, admin, decision, note, run_id=ctx.run_id)
        st.session_state["flash"] = ("success", f"{image_id[:12]} decided: {decision}.")
    except ReviewError as exc:
        st.session_state["flash"] = ("error", str(exc))


def render_adjudication() -> None:
    ctx = context()
    admin, _ = require_user(admin=True)
    st.title("Adjudication")
    flash = st.session_state.pop("flash", None)
    if flash:
        getattr(st, flash[0])(flash[1])
    queue = adjudication_queue(ctx.catalog, admin)
    everyone = adjudication_queue(ctx.catalog)
    if len(everyone) > len(queue):
        st.info(f"{len(everyone) - len(queue)} split image(s) you voted on need another admin.")
    if not queue:
        st.success("No split votes waiting for you.")
        return
    st.write(f"{len(queue)} split image(s) waiting.")
    item = queue[0]
    image_id = item["image_id"]
    info = image_info(ctx.catalog, image_id)
    st.caption(f"image {image_id[:12]}")
    if info is not None:
        preview = ctx.previews.get(image_id, info["path"])
        st.image(preview.fit, caption="fit view", width="stretch")
        cols = st.columns(max(1, len(preview.crops)))
        for col, crop in zip(cols, preview.crops, strict=False):
            col.image(crop, caption="1:1 crop")
    st.table(
        [
            {"reviewer": v["reviewer"], "vote": v["decision"], "reasons": ", ".join(v["reasons"])}
            for v in item["votes"]
        ]
    )
    st.text_input("Note", key=f"note-{image_id}")
    left, right = st.columns(2)
    left.button(
        "Decide: accept",
        key=f"adj-accept-{image_id}",
        on_click=_decide,
        args=(image_id, "accept"),
        type="primary",
    )
    right.button(
        "Decide: reject", key=f"adj-reject-{image_id}", on_click=_decide, args=(image_id, "reject")
    )


def render_accounts() -> None:
    ctx = context()
    admin, _ = require_user(admin=True)
    st.title("Accounts")
    st.table(
        [
            {"name": r.name, "role": r.role, "disabled": r.disabled}
            for r in list_reviewers(ctx.catalog)
        ]
    )
    with st.form("add-account", clear_on_submit=True):
        st.markdown("**Add a reviewer**")
        name = st.text_input("New username")
        role = st.selectbox("Role", ROLES)
        password = st.text_input("Initial password", type="password")
        if st.form_submit_button("Add"):
            try:
                add_reviewer(ctx.catalog, name.strip(), role, password, actor=admin)
                st.success(f"added {name.strip()}")
            except AccountError as exc:
                st.error(str(exc))
    with st.form("change-account"):
        st.markdown("**Change an account**")
        names = [r.name for r in list_reviewers(ctx.catalog)]
        target = st.selectbox("Account", names)
        action = st.radio("Action", ["disable", "enable", "reset password"], horizontal=True)
        new_password = st.text_input("New password (for reset)", type="password")
        if st.form_submit_button("Apply") and target:
            try:
                if action == "reset password":
                    reset_password(ctx.catalog, target, new_password, actor=admin)
                else:
                    if target == admin and action == "disable":
                        raise AccountError("you cannot disable your own account")
                    set_disabled(ctx.catalog, target, action == "disable", actor=admin)
                st.success(f"{action}: {target}")
            except AccountError as exc:
                st.error(str(exc))
