"""The bundled review component (plain HTML/JS in frontend/, no build step): it owns the image
view and the keyboard and talks to the review API (review_app/api.py) directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit.components.v1 as components

FRONTEND = Path(__file__).with_name("frontend")
_component = components.declare_component("hfaid_review", path=str(FRONTEND))


def review_component(mode: str, key: str, **args: Any) -> None:
    """Mount the component in `mode` (login, review, adjudicate, logout). It never sends a
    value back: votes go to the API, so no click costs a script rerun."""
    _component(mode=mode, key=key, default=None, **args)
