"""Dashboard: queue states, per-reviewer counts and speed, agreement (kappa), disagreements."""

from __future__ import annotations

import streamlit as st

from db.review import REASONS, agreement, audit_log, disagreements, reviewer_stats, state_counts
from review_app.context import context, require_user


def render() -> None:
    ctx = context()
    _, role = require_user()
    st.title("Dashboard")
    counts = state_counts(ctx.catalog, ctx.stage_input)
    cols = st.columns(len(counts))
    for col, (state, n) in zip(cols, counts.items(), strict=True):
        col.metric(state.replace("_", " "), n)
    st.subheader("Reviewers")
    stats = reviewer_stats(ctx.catalog)
    if stats:
        st.table(stats)
    else:
        st.write("No votes yet.")
    st.subheader("Agreement")
    agree = agreement(ctx.catalog)
    kappa = agree["kappa"]
    st.write(
        f"Cohen's kappa (first vs second vote, {agree['pairs']} images with two votes): "
        + (f"{kappa:.3f}" if kappa is not None else "n/a")
    )
    labels = dict(REASONS)
    st.table(
        {
            "reason": [labels[t] for t in agree["per_reason"]],
            "kappa": [None if k is None else round(k, 3) for k in agree["per_reason"].values()],
        }
    )
    st.subheader("Disagreements")
    rows = disagreements(ctx.catalog)
    if rows:
        st.table(
            [
                {
                    "image": r["image_id"][:12],
                    "votes": "; ".join(
                        f"{v['reviewer']} {v['decision']} {','.join(v['reasons'])}"
                        for v in r["votes"]
                    ),
                    "decision": r["decision"] or "waiting for an admin",
                }
                for r in rows
            ]
        )
    else:
        st.write("None.")
    if role == "admin":
        st.subheader("Audit log (latest 50)")
        log = audit_log(ctx.catalog, 50)
        if log:
            st.table([{**e, "image_id": (e["image_id"] or "")[:12]} for e in log])
