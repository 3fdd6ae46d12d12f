"""The /ui pages: sign-in and out, the Now page and its live fragment; `mount` puts every page
module's routes on the API's app."""

from __future__ import annotations

import asyncio
import secrets
import time
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from opsmedic.slo.watch import StatusReader
from opsmedic.tokens import Scope, allows, digest
from opsmedic.ui import (  # noqa: F401  (the page modules: importing one adds its routes)
    approvals,
    deployments,
    flags,
    incident,
    rule_trial,
    rules,
    runs,
    silences,
    slos,
)
from opsmedic.ui.kit import (
    COOKIE,
    PRE_COOKIE,
    STATIC,
    SecurityHeaders,
    UiRefused,
    clock,
    form,
    http_error,
    refused,
    render,
    route,
    router,
    secure,
    signed_in,
)
from opsmedic.ui.now import RUNNING_COUNTED, now_data
from opsmedic.ui.sessions import SESSION_SECONDS, Sessions


def mount(app: FastAPI) -> None:
    """The dashboard on `app` (the API's own app: same process, same port)."""
    app.state.ui_sessions = Sessions()
    app.state.slo_reader = StatusReader(app.state.slos, app.state.store)
    app.include_router(router)
    app.add_exception_handler(UiRefused, refused)
    app.add_exception_handler(HTTPException, http_error)  # /ui's 404, 405 as pages
    app.state.own_body_limits = "/ui/"  # kit.form bounds each form (api/fastpath.py)
    app.add_middleware(SecurityHeaders)


@route("GET", "/signin", None)
async def signin_page(request: Request) -> HTMLResponse:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
    response = render("signin.html", request, csrf=pre, session=None, error="")
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", path="/ui",
                        secure=secure(request))  # fmt: skip
    return response


@route("POST", "/signin", None)
async def signin(request: Request) -> Response:
    fields = await form(request, request.cookies.get(PRE_COOKIE, ""))
    secret = fields.get("token", "").strip()
    record = await asyncio.to_thread(request.app.state.store.find_token, digest(secret))
    if record is None or not allows(record, Scope.READ):
        why = "unknown or revoked token" if record is None else "the token lacks the read scope"
        return render("signin.html", request, 401, csrf=fields["csrf"], session=None, error=why)
    sessions: Sessions = request.app.state.ui_sessions
    sessions.close(request.cookies.get(COOKIE, ""))  # signing in again ends the one before
    session = sessions.open(digest(secret), record.name, record.scopes, time.time())
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/ui",
                        secure=secure(request), max_age=int(SESSION_SECONDS))  # fmt: skip
    response.delete_cookie(PRE_COOKIE, path="/ui")
    return response


@route("POST", "/signout", Scope.READ)
async def signout(request: Request) -> Response:
    session = await signed_in(request, Scope.READ)
    await form(request, session.csrf)
    request.app.state.ui_sessions.close(session.id)
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@route("GET", "/static/{name}", None)
async def static(name: str) -> Response:
    if name not in STATIC:
        raise UiRefused(404, "no such file")
    data = resources.files("opsmedic.ui").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name])


async def _now(request: Request) -> dict[str, Any]:
    state = request.app.state
    data = await asyncio.to_thread(now_data, state.store, state.slo_reader, clock(request))
    return {"data": data, "counted": RUNNING_COUNTED}


@route("GET", "/", Scope.READ)
async def now_page(request: Request) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    return render("now.html", request, session=session, **await _now(request))


@route("GET", "/now/fragment", Scope.READ)
async def now_fragment(request: Request) -> HTMLResponse:
    await signed_in(request, Scope.READ)
    return render("now_fragment.html", request, **await _now(request))
