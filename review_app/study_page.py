"""Streamlit pages for metric studies: blind good/bad votes, and the results for admins."""

from __future__ import annotations

import streamlit as st

from curation.selection.study import results
from db.catalog import Catalog
from db.study import list_studies, next_study_item, record_study_vote

QUESTION = "Would you keep this image in a high-quality training set?"


def _choose_study(catalog: Catalog, key: str) -> int | None:
    studies = list_studies(catalog)
    if not studies:
        st.info("No metric study yet. An admin creates one with `hfaid study create`.")
        return None
    labels = {f"#{s['study_id']} · {s['items']} images": s["study_id"] for s in studies}
    return labels[st.selectbox("Study", list(labels), key=key)]


def _show_image(image_id: str, path: str | None) -> None:
    try:  # the review app's preview cache when running inside it, else the file itself
        from review_app.context import context

        st.image(context().previews.get(image_id, path).fit, width="stretch")
    except Exception:  # noqa: BLE001 - outside the app (or no preview): show the original
        if path is None:
            st.error(f"image {image_id[:12]} has no readable path")
        else:
            st.image(path, width="stretch")


def render_study_page(catalog: Catalog, reviewer: str) -> None:
    """One image at a time, no metric shown; Good / Bad records the reviewer's verdict."""
    st.header("Metric study")
    study_id = _choose_study(catalog, "study-pick")
    if study_id is None:
        return
    item = next_study_item(catalog, study_id, reviewer)
    if item is None:
        st.success("You have judged every image in this study. Thank you!")
        return
    st.progress(item["done"] / max(item["total"], 1),
                text=f"{item['done']} of {item['total']} judged")
    st.write(QUESTION)
    good, bad = st.columns(2)
    good.button("Good", key=f"study-good-{item['image_id']}", type="primary",
                on_click=record_study_vote,
                args=(catalog, study_id, item["image_id"], reviewer, True))
    bad.button("Bad", key=f"study-bad-{item['image_id']}", on_click=record_study_vote,
               args=(catalog, study_id, item["image_id"], reviewer, False))
    _show_image(item["image_id"], item["path"])


def render_study_results(catalog: Catalog) -> None:
    """Per metric: how often reviewers side with it (admins)."""
    st.header("Metric study results")
    study_id = _choose_study(catalog, "study-results-pick")
    if study_id is None:
        return
    _, rows = results(catalog, study_id)
    st.caption("agreement = (best-list images judged good + worst-list images judged bad) / "
               "votes; 0.5 is chance")
    st.dataframe(
        [{"metric": r["metric"], "agreement": r["agreement"],
          "best judged good": r["best_accept_rate"], "worst judged good": r["worst_accept_rate"],
          "votes": r["best_votes"] + r["worst_votes"], "reviewers": r["reviewers"],
          "verdict": r["verdict"]} for r in rows],
        hide_index=True,
    )
