"""The review app's HTTP API (/api/review/...), called by the bundled component: login, the
reviewer's leased images, votes, undo and history, previews, adjudication. Every call checks the
session cookie against the catalog; every rule lives in db/. A vote is one small request, not a
Streamlit script rerun."""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import re
import struct
import time
from collections import OrderedDict
from typing import Any

from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from streamlit import config as st_config

from db.accounts import Reviewer, end_session, start_session, verify_login
from db.errors import CatalogError
from db.review import (
    DECISIONS,
    MAX_TEXT,
    REASON_TAGS,
    SKIP,
    NotNeeded,
    ReviewError,
    Vote,
    adjudicate,
    adjudication_queue,
    history,
    image_file,
    image_scores,
    next_images,
    record_file_error,
    undo_decision,
    undo_vote,
    viewable,
)
from db.review_stats import reviewer_progress
from review_app.auth import COOKIE
from review_app.context import AppContext, context
from review_app.previews import failure

PREFIX = "/api/review"
_IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
NOT_NEEDED = "This image no longer needs your vote; your vote was not stored."
PROGRESS_TTL_S = 15.0  # "images left" counts the whole queue: recomputed at most this often
_progress_cache: dict[tuple, tuple[float, dict]] = {}


class Refused(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.extra = status, extra


def _client(conn: HTTPConnection) -> str:
    host = conn.client.host if conn.client else "unknown"
    return host.removeprefix("::ffff:")


async def _body(request: Request) -> dict[str, Any]:
    """A JSON object from a same-origin script: the custom header cannot be sent by a form on
    another site, and no CORS answer lets another site's script send it (no CSRF)."""
    if request.headers.get("x-hfaid") != "1":
        raise Refused(403, "requests must come from the review page")
    raw = await request.body()
    if len(raw) > 64_000:
        raise Refused(413, "request too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise Refused(400, "request is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "request must be a JSON object")
    return body


async def _session(
    conn: HTTPConnection, admin: bool = False
) -> tuple[AppContext, Reviewer, str]:
    """The context, the session's account (checked against the catalog) and its token."""
    ctx = await run_in_threadpool(context)
    cookie = conn.cookies.get(COOKIE)
    user = await run_in_threadpool(_account, ctx, cookie)
    if admin and not user.is_admin:
        raise Refused(403, "Admins only.")
    return ctx, user, ctx.sessions.token(cookie)


def _account(ctx: AppContext, cookie: str | None) -> Reviewer:
    """The enabled account behind the session cookie; refused (401) when the session ended."""
    user = ctx.user(cookie)
    if user is None:
        raise Refused(401, "Your session has ended (logged out, expired or disabled); "
                           "log in again.")
    return user


def _image_id(value: Any) -> str:
    if not isinstance(value, str) or not _IMAGE_ID.match(value):
        raise Refused(400, "not an image id")
    return value


def _endpoint(handler):
    """Refusals become JSON answers with their status; a locked or broken catalog is a 503."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as exc:
            return JSONResponse({"error": str(exc), **exc.extra}, status_code=exc.status)
        except CatalogError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)

    return wrapped


# ---- login ----------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    body = await _body(request)
    name = str(body.get("name") or "").strip()[:64]
    password = str(body.get("password") or "")[:1024]
    ctx = await run_in_threadpool(context)
    client = _client(request)
    wait = ctx.limiter.wait_s(name, client)
    if wait > 0:
        raise Refused(429, f"Too many failed logins for this name from your address; try again "
                           f"in {math.ceil(wait)} s.", retry_after=math.ceil(wait))
    future = ctx.verify.submit(verify_login, ctx.catalog, name, password, client=client)
    if future is None:
        raise Refused(503, "The server is busy checking other logins; try again in a moment.",
                      retry_after=2)
    account = await asyncio.wrap_future(future)
    if account is None:
        wait = ctx.limiter.failed(name, client)
        message = "Wrong username or password, or the account is disabled."
        if wait > 0:
            message += f" Wait {math.ceil(wait)} s before the next try."
        raise Refused(401, message, retry_after=math.ceil(wait))
    ctx.limiter.succeeded(name, client)
    hours = ctx.config.review.session_hours
    token = await run_in_threadpool(start_session, ctx.catalog, account.name, client, hours)
    response = JSONResponse({"ok": True, "name": account.name, "role": account.role})
    response.set_cookie(
        COOKIE, ctx.cookies.encode(token), max_age=int(hours * 3600), path="/", httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    await _body(request)
    ctx = await run_in_threadpool(context)
    token = ctx.sessions.token(request.cookies.get(COOKIE))
    if token:
        await run_in_threadpool(end_session, ctx.catalog, token)
        ctx.sessions.end(token)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/")
    return response


# ---- the reviewer's queue -------------------------------------------------------------------


def _items(ctx: AppContext, token: str, leases) -> list[dict[str, Any]]:
    """The leased images as the page gets them: ids and the tickets to load them."""
    return [{"image_id": lease.image_id, "ticket": ctx.tickets.issue(token, lease.image_id)}
            for lease in leases]


def _progress(ctx: AppContext, name: str) -> dict[str, int]:
    key = (name, ctx.stage_input)
    hit = _progress_cache.get(key)
    if hit and time.monotonic() - hit[0] < PROGRESS_TTL_S:
        return hit[1]
    value = reviewer_progress(ctx.catalog, name, ctx.stage_input)
    _progress_cache[key] = (time.monotonic(), value)
    return value


def _history(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    return [
        {**h, "at": h["at"].isoformat(timespec="seconds") + "Z"}
        for h in history(ctx.catalog, name, ctx.rules.undo_window_s)
    ]


async def state(request: Request) -> Response:
    ctx, user, token = await _session(request)

    def read() -> dict[str, Any]:
        leases = next_images(ctx.catalog, user.name, ctx.stage_input, ctx.rules,
                             run_id=ctx.run_id)
        ctx.prefetch.poke()
        return {"user": user.name, "role": user.role, "items": _items(ctx, token, leases),
                "history": _history(ctx, user.name), "progress": _progress(ctx, user.name)}

    return JSONResponse(await run_in_threadpool(read))


def _vote(body: dict[str, Any]) -> Vote:
    decision = body.get("decision")
    if decision not in (*DECISIONS, SKIP):
        raise Refused(400, "decision must be accept, reject or skip")
    reasons = body.get("reasons") or []
    if not isinstance(reasons, list) or not all(r in REASON_TAGS for r in reasons):
        raise Refused(400, "unknown reason")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_TEXT):
        raise Refused(400, f"a comment is text of at most {MAX_TEXT} characters")
    seen = body.get("seen_ms")
    seen = int(seen) if isinstance(seen, int | float) and 0 <= seen < 2**31 else None
    return Vote(_image_id(body.get("image_id")), decision, tuple(dict.fromkeys(reasons)),
                comment, seen)


async def vote(request: Request) -> Response:
    body = await _body(request)
    ctx, user, token = await _session(request)
    cast = _vote(body)

    def run() -> Response:
        try:
            leases = next_images(ctx.catalog, user.name, ctx.stage_input, ctx.rules, cast,
                                 run_id=ctx.run_id)
        except ReviewError as exc:
            leases = next_images(ctx.catalog, user.name, ctx.stage_input, ctx.rules)
            message = NOT_NEEDED if isinstance(exc, NotNeeded) else str(exc)
            return JSONResponse({"error": message, "image_id": cast.image_id,
                                 "items": _items(ctx, token, leases)}, status_code=409)
        ctx.prefetch.poke()
        return JSONResponse({"ok": True, "items": _items(ctx, token, leases)})

    return await run_in_threadpool(run)


async def undo(request: Request) -> Response:
    body = await _body(request)
    ctx, user, token = await _session(request)
    which = body.get("image_id")
    which = None if which is None else _image_id(which)

    def run() -> dict[str, Any]:
        try:
            image_id = undo_vote(ctx.catalog, user.name, ctx.rules.undo_window_s,
                                 ctx.rules.lease_s, which)
        except ReviewError as exc:
            raise Refused(409, str(exc)) from None
        leases = next_images(ctx.catalog, user.name, ctx.stage_input, ctx.rules)
        return {"image_id": image_id, "items": _items(ctx, token, leases),
                "history": _history(ctx, user.name)}

    return JSONResponse(await run_in_threadpool(run))


async def my_history(request: Request) -> Response:
    ctx, user, token = await _session(request)
    return JSONResponse({"history": await run_in_threadpool(_history, ctx, user.name)})


# ---- images ---------------------------------------------------------------------------------


_FILES: OrderedDict[str, dict] = OrderedDict()  # image_id -> path, size at ingest, format
_FILES_MAX = 4096


def _file(ctx: AppContext, image_id: str, fresh: bool = False) -> dict | None:
    """The image's file facts, remembered (they change only when an image is ingested again;
    a file found missing is looked up afresh before that is recorded)."""
    info = None if fresh else _FILES.get(image_id)
    if info is None:
        info = image_file(ctx.catalog, image_id)
        if info is not None:
            _FILES[image_id] = info
            while len(_FILES) > _FILES_MAX:
                _FILES.popitem(last=False)
    return info


def _allowed(ctx: AppContext, request: Request, image_id: str) -> tuple[Reviewer, dict]:
    """The session's account and the image's file if this session may load it: a ticket handed
    out with the lease (no catalog query), else the catalog's word (a lease, a vote, admin)."""
    cookie = request.cookies.get(COOKIE)
    user = _account(ctx, cookie)
    token = ctx.sessions.token(cookie)
    ticket = request.query_params.get("t")
    if not ctx.tickets.allows(ticket, token, image_id):
        with ctx.catalog.connect() as con:
            if viewable(con, image_id, user.name, user.is_admin) is None:
                raise Refused(403, "this image is not yours to see")
    info = _file(ctx, image_id)
    if info is None:
        raise Refused(404, "no such image")
    return user, info


def _load_preview(ctx: AppContext, request: Request, image_id: str):
    """The image's preview, built if needed; a file that cannot be opened is recorded as the
    image's outcome (it leaves the queue for everyone) and answered 410."""
    user, info = _allowed(ctx, request, image_id)
    try:
        # A file that went away or changed counts even if its preview was built before: the
        # reviewer would judge pixels nobody can export.
        if info["path"] is None or not os.path.isfile(info["path"]):
            info = _file(ctx, image_id, fresh=True) or info  # moved by a new ingest?
            if info["path"] is None or not os.path.isfile(info["path"]):
                raise FileNotFoundError(f"no file at {info['path']}")
        size = os.path.getsize(info["path"])
        if info["bytes"] is not None and size != info["bytes"]:
            raise ValueError(f"changed since ingest ({info['bytes']} bytes, now {size})")
        return user, info, ctx.previews.get(image_id, info["path"])
    except Exception as exc:  # noqa: BLE001 - whatever the decoder raises is the file's outcome
        reason, detail = failure(exc)
        where = str(info["path"])
        record_file_error(ctx.catalog, image_id, reason,
                          detail if where in detail else f"{where}: {detail}",
                          actor=user.name, run_id=ctx.run_id)
        raise Refused(410, f"This image's file cannot be shown ({reason}); it was recorded "
                           "and taken out of the queue.", reason=reason) from None


async def bundle(request: Request) -> Response:
    """One image's fit view and 1:1 crops in one answer (a page loads its next images ahead
    with one request each): a 4-byte header length, a JSON header, then the JPEGs."""
    ctx = await run_in_threadpool(context)
    image_id = _image_id(request.path_params["image_id"])
    user, info, built = await run_in_threadpool(_load_preview, ctx, request, image_id)
    fit_w, fit_h = Image.open(io.BytesIO(built.fit)).size
    header = json.dumps({
        "image_id": image_id, "width": built.width, "height": built.height,
        "fit": {"w": fit_w, "h": fit_h},
        "crops": [{"x": b[0], "y": b[1], "w": b[2] - b[0], "h": b[3] - b[1]}
                  for b in built.boxes],
        "parts": [len(built.fit), *(len(c) for c in built.crops)],
        "original": f"{PREFIX}/original/{image_id}",
        # Admins see where the file is; a reviewer sees nothing that could hint at a verdict.
        **({"path": info["path"]} if user.is_admin else {}),
        **({"scores": image_scores(ctx.catalog, image_id)}
           if ctx.config.review.show_scores else {}),
    }).encode()
    body = b"".join([struct.pack(">I", len(header)), header, built.fit, *built.crops])
    return Response(body, media_type="application/octet-stream",
                    headers={"Cache-Control": "private, max-age=86400"})


async def original(request: Request) -> Response:
    """The file itself (or a lossless copy) for the loupe's 100% / 200% views."""
    ctx = await run_in_threadpool(context)
    image_id = _image_id(request.path_params["image_id"])
    _, info = await run_in_threadpool(_allowed, ctx, request, image_id)
    try:
        path, media = await run_in_threadpool(
            ctx.previews.original, image_id, info["path"], info["format"])
    except Exception as exc:  # noqa: BLE001 - the file went away after its preview was built
        raise Refused(410, f"the original cannot be read ({failure(exc)[0]})") from None
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


# ---- adjudication (admins) ------------------------------------------------------------------


def _cases(ctx: AppContext, admin: str, token: str) -> dict[str, Any]:
    mine = [{**case, "ticket": ctx.tickets.issue(token, case["image_id"])}
            for case in adjudication_queue(ctx.catalog, admin)]
    return {"cases": mine, "elsewhere": len(adjudication_queue(ctx.catalog)) - len(mine)}


async def cases(request: Request) -> Response:
    ctx, user, token = await _session(request, admin=True)
    return JSONResponse(await run_in_threadpool(_cases, ctx, user.name, token))


async def decide(request: Request) -> Response:
    body = await _body(request)
    ctx, user, token = await _session(request, admin=True)
    image_id = _image_id(body.get("image_id"))
    decision = body.get("decision")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise Refused(400, "a note is text")

    def run() -> dict[str, Any]:
        try:
            adjudicate(ctx.catalog, image_id, user.name, decision, note, run_id=ctx.run_id)
        except ReviewError as exc:
            raise Refused(409, str(exc), **_cases(ctx, user.name, token)) from None
        return _cases(ctx, user.name, token)

    return JSONResponse(await run_in_threadpool(run))


async def undecide(request: Request) -> Response:
    await _body(request)
    ctx, user, token = await _session(request, admin=True)

    def run() -> dict[str, Any]:
        try:
            image_id = undo_decision(ctx.catalog, user.name, ctx.rules.undo_window_s)
        except ReviewError as exc:
            raise Refused(409, str(exc)) from None
        return {"image_id": image_id, **_cases(ctx, user.name, token)}

    return JSONResponse(await run_in_threadpool(run))


ROUTES = [
    Route(f"{PREFIX}/login", _endpoint(login), methods=["POST"]),
    Route(f"{PREFIX}/logout", _endpoint(logout), methods=["POST"]),
    Route(f"{PREFIX}/state", _endpoint(state), methods=["GET"]),
    Route(f"{PREFIX}/vote", _endpoint(vote), methods=["POST"]),
    Route(f"{PREFIX}/undo", _endpoint(undo), methods=["POST"]),
    Route(f"{PREFIX}/history", _endpoint(my_history), methods=["GET"]),
    Route(f"{PREFIX}/bundle/{{image_id}}", _endpoint(bundle), methods=["GET"]),
    Route(f"{PREFIX}/original/{{image_id}}", _endpoint(original), methods=["GET"]),
    Route(f"{PREFIX}/cases", _endpoint(cases), methods=["GET"]),
    Route(f"{PREFIX}/decide", _endpoint(decide), methods=["POST"]),
    Route(f"{PREFIX}/undo-decision", _endpoint(undecide), methods=["POST"]),
]


class Gate:
    """ASGI middleware in front of Streamlit's own: /media files (st.image and friends) only for
    a live session (without one, or after logout, 403); and no gzip for image bundles and
    originals (JPEG bytes do not shrink; Streamlit's gzip at level 9 would only burn CPU)."""

    def __init__(self, app) -> None:
        self.app = app
        base = (st_config.get_option("server.baseUrlPath") or "").strip("/")
        root = f"/{base}" if base else ""
        self.media = f"{root}/media/"
        self.images = (f"{root}{PREFIX}/bundle/", f"{root}{PREFIX}/original/")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path.startswith(self.media):
                conn = HTTPConnection(scope)
                ctx = await run_in_threadpool(context)
                if await run_in_threadpool(ctx.user, conn.cookies.get(COOKIE)) is None:
                    await PlainTextResponse("log in to see images", status_code=403)(
                        scope, receive, send)
                    return
            elif path.startswith(self.images):
                scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                              if k.lower() != b"accept-encoding"]}
        await self.app(scope, receive, send)
