"""What the pages and the HTTP API share: catalog, config, queue rules, previews, logins, and the
session's account, read from the catalog on every script run."""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from db.accounts import Reviewer, session_user
from db.catalog import Catalog, default_catalog_path
from db.errors import CatalogError
from db.review import Rules, sync_queue, upcoming_images
from db.warm import InstanceKeeper
from hfaid_core.config import Config, load_config
from review_app.auth import COOKIE, CookieCodec, LoginLimiter, Sessions, Tickets, VerifyPool
from review_app.previews import Prefetcher, PreviewCache
from review_app.server_env import ENV_CATALOG, ENV_CONFIG, ENV_RUN, ENV_STAGE, queue_stage

# Fresh images built ahead of the leases: at 20 reviewers about four are handed out per second.
PREFETCH_AHEAD = 16


@dataclass(frozen=True)
class AppContext:
    catalog: Catalog
    config: Config
    stage_input: str | None  # None: every ingested image is in the queue
    run_id: int | None
    rules: Rules
    previews: PreviewCache
    prefetch: Prefetcher  # builds the previews of the next unclaimed images in the background
    limiter: LoginLimiter
    verify: VerifyPool
    cookies: CookieCodec
    sessions: Sessions
    tickets: Tickets  # which session may load which image, without asking the catalog
    keeper: InstanceKeeper  # keeps the catalog warm while sessions are busy

    def user(self, cookie: str | None) -> Reviewer | None:
        """The enabled account behind a session cookie, as the catalog says (see Sessions)."""
        return self.sessions.user(cookie)


_CONTEXTS: dict[tuple, AppContext] = {}
_BUILD = threading.Lock()


def _build(catalog: str, config: str | None, stage: str | None, run_id: str | None) -> AppContext:
    cfg = load_config(Path(config) if config else None)
    review = cfg.review
    cat = Catalog(Path(catalog), cfg.catalog.lock_timeout_s)
    stage_input = queue_stage(stage if stage is not None else review.stage_input)
    previews = PreviewCache(cat.work_dir / "previews", review, cfg.decode.max_pixels)
    rules = Rules(
        lease_s=review.lease_s,
        ahead=review.prefetch_ahead,
        top_up=2,
        undo_window_s=review.undo_window_s,
        reject_needs_reason=review.reject_needs_reason,
        skips_to_admin=review.skips_to_admin,
    )
    sync_queue(cat, stage_input, review.skips_to_admin, force=True)
    # Never waits for the file lock: a background top-up is simply skipped while it is taken.
    unlocked = Catalog(cat.path, lock_timeout_s=0)
    key = cat.work_dir / "review-session.key"
    cookies = CookieCodec(key, review.session_hours * 3600)
    ctx = AppContext(
        catalog=cat,
        config=cfg,
        stage_input=stage_input,
        run_id=int(run_id) if run_id else None,
        rules=rules,
        previews=previews,
        prefetch=Prefetcher(
            previews, lambda: upcoming_images(unlocked, stage_input, PREFETCH_AHEAD),
            min_interval_s=1.0,
        ),
        limiter=LoginLimiter(
            free=review.login_attempts,
            base_s=review.login_delay_s,
            max_s=review.login_max_delay_s,
            window_s=review.login_window_s,
            client_free=review.login_client_attempts,
        ),
        verify=VerifyPool(review.login_workers, review.login_queue),
        cookies=cookies,
        sessions=Sessions(cookies, lambda token: session_user(cat, token)),
        tickets=Tickets(key, max_age_s=review.lease_s * 2),
        # Clicks are many tiny statements: one DuckDB thread spends ~20% less CPU on them.
        keeper=InstanceKeeper(cat, threads=1),
    )
    syncer = threading.Thread(
        target=_keep_synced, args=(unlocked, stage_input, review), daemon=True,
        name="hfaid-queue-sync",
    )
    syncer.start()
    _SYNCERS.append(syncer)
    return ctx


# Set at interpreter exit, before daemon threads are frozen: a sync thread caught inside
# DuckDB's C++ at finalisation aborts the process ("FATAL: exception not rethrown").
_STOP = threading.Event()
_SYNCERS: list[threading.Thread] = []


@atexit.register
def _stop_syncers() -> None:
    _STOP.set()
    for syncer in _SYNCERS:
        syncer.join(timeout=10)


def _keep_synced(catalog: Catalog, stage_input: str | None, review) -> None:
    """Images that pass the input stage later (a new `hfaid select`) join the running queue."""
    while not _STOP.wait(review.queue_sync_s):
        try:
            sync_queue(catalog, stage_input, review.skips_to_admin)
        except CatalogError:  # locked by another process: try again next round
            continue


def context() -> AppContext:
    """The server-wide context (one per catalog/config/stage), shared by pages and the API."""
    key = (
        str(os.environ.get(ENV_CATALOG) or default_catalog_path()),
        os.environ.get(ENV_CONFIG) or None,
        os.environ.get(ENV_STAGE),
        os.environ.get(ENV_RUN),
    )
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        with _BUILD:
            ctx = _CONTEXTS.get(key)
            if ctx is None:
                ctx = _CONTEXTS[key] = _build(*key)
    ctx.keeper.touch()
    return ctx


def current_user() -> Reviewer | None:
    """This browser's account: its session cookie checked against the catalog on every run, so
    a logout, a disabled account or a changed role takes effect at the next click."""
    import streamlit as st

    return context().user(st.context.cookies.get(COOKIE))


def require_user(admin: bool = False) -> Reviewer:
    """Stop the page unless someone is logged in (and an admin when asked)."""
    import streamlit as st

    user = current_user()
    if user is None:
        st.warning("Log in first.")
        st.stop()
    if admin and not user.is_admin:
        st.error("Admins only.")
        st.stop()
    return user
