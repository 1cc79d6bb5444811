"""What every page needs: the catalog, config, queue stage, preview cache and login limiter."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from db.accounts import LoginLimiter
from db.catalog import Catalog, default_catalog_path
from db.review import upcoming_images
from db.warm import InstanceKeeper
from hfaid_core.config import Config, load_config
from review_app.previews import Prefetcher, PreviewCache
from review_app.server_env import ENV_CATALOG, ENV_CONFIG, ENV_RUN, ENV_STAGE, queue_stage

# Fresh images built ahead: at 20 reviewers about four are handed out per second.
PREFETCH_AHEAD = 8


@dataclass(frozen=True)
class AppContext:
    catalog: Catalog
    config: Config
    stage_input: str | None  # None: every ingested image is in the queue
    run_id: int | None
    previews: PreviewCache
    prefetch: Prefetcher  # builds the previews of the next unclaimed images in the background
    limiter: LoginLimiter
    keeper: InstanceKeeper  # keeps the catalog warm while sessions are busy


@st.cache_resource(show_spinner=False)
def _build(catalog: str, config: str | None, stage: str | None, run_id: str | None) -> AppContext:
    cfg = load_config(Path(config) if config else None)
    cat = Catalog(Path(catalog), cfg.catalog.lock_timeout_s)
    stage_input = queue_stage(stage if stage is not None else cfg.review.stage_input)
    previews = PreviewCache(cat.work_dir / "previews", cfg.review)
    # Never waits for the file lock: a background top-up is simply skipped while it is taken.
    unlocked = Catalog(cat.path, lock_timeout_s=0)
    return AppContext(
        catalog=cat,
        config=cfg,
        stage_input=stage_input,
        run_id=int(run_id) if run_id else None,
        previews=previews,
        prefetch=Prefetcher(
            previews, lambda: upcoming_images(unlocked, stage_input, PREFETCH_AHEAD)
        ),
        limiter=LoginLimiter(cfg.review.login_attempts, cfg.review.login_window_s),
        keeper=InstanceKeeper(cat),
    )


def context() -> AppContext:
    """The server-wide context (one per catalog/config/stage), shared by all sessions."""
    ctx = _build(
        str(os.environ.get(ENV_CATALOG) or default_catalog_path()),
        os.environ.get(ENV_CONFIG) or None,
        os.environ.get(ENV_STAGE),
        os.environ.get(ENV_RUN),
    )
    ctx.keeper.touch()
    return ctx


def current_user() -> tuple[str, str] | None:
    """(name, role) from the verified login of this browser session, else None."""
    user = st.session_state.get("user")
    return (user, st.session_state.get("role", "reviewer")) if user else None


def require_user(admin: bool = False) -> tuple[str, str]:
    """Stop the page unless someone is logged in (and an admin when asked)."""
    user = current_user()
    if user is None:
        st.warning("Log in first.")
        st.stop()
    if admin and user[1] != "admin":
        st.error("Admins only.")
        st.stop()
    return user
