"""The review page: the component shows the leased images and takes the votes (keyboard-first)."""

from __future__ import annotations

from db.review import REASONS
from review_app.component import review_component
from review_app.context import context, require_user


def render() -> None:
    require_user()
    cfg = context().config.review
    review_component(
        "review",
        key="review",
        reasons=[list(r) for r in REASONS],
        guard_ms=cfg.repeat_guard_ms,
        reject_needs_reason=cfg.reject_needs_reason,
        ahead=cfg.prefetch_ahead,
    )
