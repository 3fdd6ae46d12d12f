"""The /ui routes: sign-in and out, the Now page and its live fragment, an incident and its
buttons. Each route is registered with the scope it needs, which the route test reads."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as Scope_

from opsmedic.errors import AmbiguousRef, IncidentRefused, NotFoundError, UnknownIncident
from opsmedic.lifecycle import Action
from opsmedic.tokens import Scope, allows, digest
from opsmedic.ui.now import now_data
from opsmedic.ui.sessions import SESSION_SECONDS, Session, Sessions
from opsmedic.views import IncidentDetailView, RunView

COOKIE = "om_session"
PRE_COOKIE = "om_signin"  # the sign-in form's own CSRF pair (double-submit), before a session
FORM_MAX = 16 * 1024  # bytes of a form body; every form here is a token and a CSRF field
STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}
# Scripts and styles only from this origin (the static files): no inline script, no CDN.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/ui", include_in_schema=False)
# (method, path) → the scope it needs, None for the public ones: read by the route test.
ROUTE_SCOPES: dict[tuple[str, str], Scope | None] = {}
_env = Environment(loader=PackageLoader("opsmedic.ui", "templates"), autoescape=True)


def _age(seconds: float) -> str:
    """A duration as the page shows it: 45s, 12m, 3h 5m, 2d 4h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _utc(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


_env.filters.update(age=_age, utc=_utc)


class UiRefused(Exception):
    """A request the dashboard turns away: to the sign-in page (`status` 303) or with a page
    that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _route(method: str, path: str, scope: Scope | None) -> Callable[[Any], Any]:
    def register(handler: Any) -> Any:
        ROUTE_SCOPES[(method, "/ui" + path)] = scope
        router.add_api_route(path, handler, methods=[method])
        return handler

    return register


def mount(app: FastAPI) -> None:
    """The dashboard on `app` (the API's own app: same process, same port)."""
    app.state.ui_sessions = Sessions()
    app.include_router(router)
    app.add_exception_handler(UiRefused, _refused)
    app.add_middleware(_SecurityHeaders)


class _SecurityHeaders:
    """HEADERS on every /ui response, an unknown path's 404 included. Plain ASGI, not
    BaseHTTPMiddleware: the API's never-ending flag streams pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != "/ui" and not path.startswith("/ui/"):
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, secured)


def _render(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    page = _env.get_template(name).render(now=_clock(request), **values)
    return HTMLResponse(page, status_code=status)


def _clock(request: Request) -> float:
    now: float = request.app.state.clock.now()
    return now


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiRefused)
    if exc.status == 303:
        return RedirectResponse("/ui/signin", status_code=303)
    return _render("refused.html", request, exc.status, message=str(exc), session=None)


async def _session(request: Request, scope: Scope) -> Session:
    """The request's session if its token still holds `scope`; a revoked token ends it."""
    sessions: Sessions = request.app.state.ui_sessions
    found = sessions.get(request.cookies.get(COOKIE, ""), time.time())
    if found is None:
        if request.method == "GET":
            raise UiRefused(303, "sign in")
        raise UiRefused(403, "not signed in (or the session ended): sign in again")
    record = await asyncio.to_thread(request.app.state.store.find_token, found.token_hash)
    if record is None:
        sessions.close(found.id)
        raise UiRefused(303 if request.method == "GET" else 403, "the token was revoked")
    if not allows(record, scope) or not _held(found, scope):
        raise UiRefused(403, f"token {found.token_name!r} lacks the {scope.value!r} scope")
    return found


def _held(session: Session, scope: Scope) -> bool:
    return scope.value in session.scopes or Scope.ADMIN.value in session.scopes


async def _form(request: Request, csrf: str) -> dict[str, str]:
    """A POSTed form's fields, once its CSRF field matches `csrf`."""
    body = await request.body()
    if len(body) > FORM_MAX:
        raise UiRefused(413, f"a form of {len(body)} bytes is over {FORM_MAX}")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if not csrf or not hmac.compare_digest(fields.get("csrf", ""), csrf):
        raise UiRefused(403, "the form's CSRF token is missing or wrong: reload the page")
    return fields


def _secure(request: Request) -> bool:
    # The API has no trusted-proxy setting, so X-Forwarded-Proto is not believed: Secure
    # follows the connection opsmedic itself serves.
    return request.url.scheme == "https"


@_route("GET", "/signin", None)
async def signin_page(request: Request) -> HTMLResponse:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
    response = _render("signin.html", request, csrf=pre, session=None, error="")
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", path="/ui",
                        secure=_secure(request))  # fmt: skip
    return response


@_route("POST", "/signin", None)
async def signin(request: Request) -> Response:
    fields = await _form(request, request.cookies.get(PRE_COOKIE, ""))
    secret = fields.get("token", "").strip()
    record = await asyncio.to_thread(request.app.state.store.find_token, digest(secret))
    if record is None or not allows(record, Scope.READ):
        why = "unknown or revoked token" if record is None else "the token lacks the read scope"
        return _render("signin.html", request, 401, csrf=fields["csrf"], session=None, error=why)
    sessions: Sessions = request.app.state.ui_sessions
    session = sessions.open(digest(secret), record.name, record.scopes, time.time())
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/ui",
                        secure=_secure(request), max_age=int(SESSION_SECONDS))  # fmt: skip
    response.delete_cookie(PRE_COOKIE, path="/ui")
    return response


@_route("POST", "/signout", Scope.READ)
async def signout(request: Request) -> Response:
    session = await _session(request, Scope.READ)
    await _form(request, session.csrf)
    request.app.state.ui_sessions.close(session.id)
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@_route("GET", "/static/{name}", None)
async def static(name: str) -> Response:
    if name not in STATIC:
        raise UiRefused(404, "no such file")
    data = resources.files("opsmedic.ui").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name])


async def _now(request: Request) -> dict[str, Any]:
    state = request.app.state
    data = await asyncio.to_thread(now_data, state.store, state.slos, _clock(request))
    return {"data": data}


@_route("GET", "/", Scope.READ)
async def now_page(request: Request) -> HTMLResponse:
    session = await _session(request, Scope.READ)
    return _render("now.html", request, session=session, **await _now(request))


@_route("GET", "/now/fragment", Scope.READ)
async def now_fragment(request: Request) -> HTMLResponse:
    await _session(request, Scope.READ)
    return _render("now_fragment.html", request, **await _now(request))


@_route("GET", "/incidents/{ref}", Scope.READ)
async def incident_page(request: Request, ref: str) -> HTMLResponse:
    session = await _session(request, Scope.READ)
    store = request.app.state.store
    if "\x00" in ref:
        raise UiRefused(422, "a NUL character cannot be in an id")
    try:
        incident, alerts, timeline = await asyncio.to_thread(store.get_incident, ref)
    except NotFoundError as exc:  # a short id several share: 409, as the API says
        raise UiRefused(409 if isinstance(exc, AmbiguousRef) else 404, str(exc)) from None
    hunt = await asyncio.to_thread(store.loghunts.latest, incident.id)
    # The incident's own runs, bounded, as its post-mortem draft reads them.
    story = await asyncio.to_thread(store.reports.story, incident.id, _clock(request))
    draft = await asyncio.to_thread(store.reports.draft, incident.id)
    detail = IncidentDetailView.of(incident, alerts, timeline, hunt)
    mine = [RunView.of(r) for r in story.runs]
    return _render("incident.html", request, session=session, incident=detail, runs=mine,
                   runs_total=story.runs_total, draft=draft,
                   can_operate=_held(session, Scope.OPERATE))  # fmt: skip


def _act(action: Action) -> Callable[[Request, str], Awaitable[Response]]:
    async def route(request: Request, ref: str) -> Response:
        session = await _session(request, Scope.OPERATE)
        await _form(request, session.csrf)
        store, engine = request.app.state.store, request.app.state.engine
        who = f"{session.token_name} (dashboard)"
        try:
            incident, _ = await asyncio.to_thread(
                store.incident_action, ref, action, who, _clock(request), ""
            )
        except UnknownIncident as exc:
            raise UiRefused(404, str(exc)) from None
        except IncidentRefused as exc:
            raise UiRefused(409, f"incident {ref}: {exc}") from None
        engine.acted_on_incidents()
        return RedirectResponse(f"/ui/incidents/{incident.id}", status_code=303)

    return route


for _action in (Action.ACK, Action.RESOLVE):
    _route("POST", f"/incidents/{{ref}}/{_action}", Scope.OPERATE)(_act(_action))
