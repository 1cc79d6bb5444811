"""The review page: one leased image, fit view and 1:1 crops, Accept/Reject with reasons, undo."""

from __future__ import annotations

import streamlit as st

from db.review import (
    REASONS,
    ReviewError,
    ReviewView,
    Vote,
    review_view,
    undo_last_vote,
    vote_and_next,
)
from review_app.context import context, require_user

# Streamlit has no key bindings: this script clicks the page's own buttons, so a shortcut can
# do nothing a mouse click could not (and the same server-side checks apply).
SHORTCUTS = """
<script>
const doc = window.parent.document;
if (!doc.hfaidShortcuts) {
  doc.hfaidShortcuts = true;
  doc.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    const click = (label) => {
      const b = [...doc.querySelectorAll('button')].find(b => b.innerText.trim() === label);
      if (b) { b.click(); e.preventDefault(); }
    };
    const k = e.key.toLowerCase();
    if (k === 'a') click('Accept');
    else if (k === 'r') click('Reject');
    else if (k === 'u') click('Undo last vote');
    else if (/^[1-9]$/.test(k)) {
      const boxes = doc.querySelectorAll('[data-testid="stCheckbox"] label');
      if (boxes[+k - 1]) { boxes[+k - 1].click(); e.preventDefault(); }
    }
  });
}
</script>
"""


def _vote(image_id: str, decision: str) -> None:
    ctx = context()
    user, _ = require_user()
    # A stale click (older page, replayed message) names an image this session no longer shows.
    if st.session_state.get("current") != image_id:
        st.session_state["flash"] = (
            "warning",
            "That image is no longer on your screen; vote ignored.",
        )
        return
    reasons = tuple(tag for tag, _ in REASONS if st.session_state.get(f"reason-{tag}-{image_id}"))
    comment = st.session_state.get(f"comment-{image_id}", "").strip()
    try:
        # The vote and the next lease in one transaction; the page then renders from the view.
        view = vote_and_next(
            ctx.catalog,
            user,
            ctx.stage_input,
            ctx.config.review.lease_s,
            Vote(image_id, decision, reasons, comment),
            run_id=ctx.run_id,
        )
    except ReviewError as exc:
        st.session_state["flash"] = ("error", str(exc))
        st.session_state["current"] = None
        return
    done = f"{decision.title()}ed {image_id[:12]} ({view.status})."
    st.session_state["flash"] = ("success", done)
    _show(view)
    ctx.prefetch.poke()


def _undo() -> None:
    ctx = context()
    user, _ = require_user()
    try:
        image_id = undo_last_vote(
            ctx.catalog, user, ctx.config.review.undo_window_s, ctx.config.review.lease_s
        )
        st.session_state["current"] = image_id
        st.session_state["flash"] = ("info", f"Vote on {image_id[:12]} undone; vote again.")
    except ReviewError as exc:
        st.session_state["flash"] = ("error", str(exc))


def _show(view: ReviewView) -> None:
    # Kept per session: reruns that do not change the image (a reason ticked) read no catalog.
    st.session_state["current"] = view.image_id
    st.session_state["view"] = view


def _view(ctx, user: str) -> ReviewView:
    """This session's image and what the page shows about it; leases one if it has none."""
    current = st.session_state.get("current")
    view = st.session_state.get("view")
    if not current:
        view = vote_and_next(ctx.catalog, user, ctx.stage_input, ctx.config.review.lease_s)
        _show(view)
        ctx.prefetch.poke()
    elif view is None or view.image_id != current:  # after an undo
        view = review_view(ctx.catalog, user, ctx.stage_input, current)
        _show(view)
    return view


def render() -> None:
    ctx = context()
    user, _ = require_user()
    cfg = ctx.config.review
    view = _view(ctx, user)
    image_id = view.image_id
    flash = st.session_state.pop("flash", None)
    if flash:
        getattr(st, flash[0])(flash[1])
    progress = view.progress
    st.sidebar.markdown(
        f"**{user}**: {progress['votes']} votes ({progress['votes_24h']} in 24 h), "
        f"{progress['left']} images left for you"
    )
    st.button("Undo last vote", on_click=_undo, help="U: take back your last vote")
    if image_id is None:
        st.success("Nothing left for you to review. Thank you!")
        return
    info = view.info
    if info is None:
        st.error(f"image {image_id[:12]} is no longer in the catalog")
        st.session_state["current"] = None
        return
    try:
        preview = ctx.previews.get(image_id, info["path"])
    except OSError as exc:
        st.error(f"cannot open {info['path']}: {exc}")
        return
    st.caption(f"image {image_id[:12]} · {preview.width}×{preview.height}")
    left, right = st.columns([3, 1])
    with left:
        st.image(preview.fit, caption="fit view", width="stretch")
        crops = st.columns(max(1, len(preview.crops)))
        for col, crop in zip(crops, preview.crops, strict=False):
            col.image(crop, caption="1:1 crop")
    with right:
        accept, reject = st.columns(2)
        accept.button(
            "Accept",
            key=f"accept-{image_id}",
            type="primary",
            on_click=_vote,
            args=(image_id, "accept"),
            help="A",
        )
        reject.button(
            "Reject", key=f"reject-{image_id}", on_click=_vote, args=(image_id, "reject"), help="R"
        )
        st.markdown("**Reasons** (digits toggle)")
        for i, (tag, label) in enumerate(REASONS, start=1):
            st.checkbox(f"{i} {label}", key=f"reason-{tag}-{image_id}")
        st.text_input("Comment", key=f"comment-{image_id}")
        if cfg.show_scores and info["scores"]:
            st.markdown("**Scores**")
            st.table(
                {
                    "metric": list(info["scores"]),
                    "value": [
                        round(v, 3) if v is not None else None for v in info["scores"].values()
                    ],
                }
            )
    st.iframe(SHORTCUTS, height="content")
