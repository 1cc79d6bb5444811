"""Dashboard: progress and ETA for the team and each reviewer; for admins also queue states,
agreement (kappa where both votes used a category, with its pairs) and disagreements."""

from __future__ import annotations

import streamlit as st

from db.review import REASONS
from db.review_stats import agreement, disagreements, progress, state_counts
from review_app.context import context, require_user
from review_app.plain import plain


def _eta(left: int, hours: float | None) -> str:
    if left == 0:
        return "done"
    if hours is None:
        return "ETA unknown (no pace yet)"
    return f"ETA {max(hours, 0.1):.1f} h" if hours < 48 else f"ETA {hours / 24:.1f} days"


def render() -> None:
    ctx = context()
    user = require_user()
    st.title("Dashboard")
    prog = progress(ctx.catalog, ctx.stage_input)
    team = prog["team"]
    st.subheader("Team")
    st.progress(
        min(1.0, team["fraction"]),
        text=f"{team['votes_cast']:,} votes cast, {team['votes_needed']:,} still needed · "
        f"{team['votes_last_hour']:,} votes in the last hour · "
        f"{_eta(team['votes_needed'], team['eta_hours'])} · "
        f"{team['waiting_for_admin']:,} waiting for an admin",
    )
    people = [p for p in prog["reviewers"] if user.is_admin or p["reviewer"] == user.name]
    st.subheader("Reviewers" if user.is_admin else "You")
    if not people:
        st.write("No votes yet.")
    for p in people:
        pace = f"{p['votes_per_hour']:.0f} votes/h" if p["votes_per_hour"] else "no pace yet"
        st.progress(
            min(1.0, p["fraction"]),
            text=f"{plain(p['reviewer'])}: {p['votes']:,} votes · {pace} · "
            f"{p['left']:,} images still open to them · {_eta(p['left'], p['eta_hours'])}",
        )
    if not user.is_admin:
        return
    counts = state_counts(ctx.catalog, ctx.stage_input)
    cols = st.columns(len(counts))
    for col, (state, n) in zip(cols, counts.items(), strict=True):
        col.metric(state.replace("_", " "), n)
    st.subheader("Agreement")
    agree = agreement(ctx.catalog)
    kappa = agree["kappa"]
    st.write(
        "Cohen's kappa, first vs second vote: "
        + (f"{kappa:.3f}" if kappa is not None else "n/a")
        + f" over {agree['pairs']} image(s) with two votes."
    )
    if not agree["reliable"]:
        st.warning(f"Only {agree['pairs']} pair(s): kappa is not reliable yet.")
    labels = dict(REASONS)
    rows = [
        {
            "reason": labels.get(tag, tag),
            "kappa": None if r["kappa"] is None else round(r["kappa"], 3),
            "first votes using it": r["first_used"],
            "second votes using it": r["second_used"],
            "pairs": r["pairs"],
        }
        for tag, r in agree["per_reason"].items()
    ]
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.write("No reason used in votes yet.")
    st.caption("A reason gets a kappa only where both the first and the second votes used it.")
    st.subheader("Disagreements")
    rows = disagreements(ctx.catalog)
    if rows:
        st.dataframe(
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
            ],
            hide_index=True,
        )
    else:
        st.write("None.")
