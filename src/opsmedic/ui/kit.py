"""The dashboard's kit: the router, scope-checked sessions, CSRF forms, rendering and headers."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as Scope_

from opsmedic.errors import AmbiguousRef, NotFoundError
from opsmedic.tokens import Scope, allows
from opsmedic.ui.sessions import Session, Sessions

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
T = TypeVar("T")
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


def _iso(epoch: float | None) -> str:
    """A time for <time datetime>: machines (and screen readers) read this one."""
    return "" if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


_env.filters["iso"] = _iso


def _utc(epoch: float | str | None) -> str:
    """A time as every page writes it; an ISO 8601 text (a hunt's window) too, UTC when it
    names no zone (text that is no time is shown as it is)."""
    if isinstance(epoch, str):
        try:
            when = datetime.fromisoformat(epoch)
        except ValueError:
            return epoch
        epoch = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _counted(n: int, word: str) -> str:
    """`{{ n | counted("event") }}`: 1 event, 2 events."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _data(value: Any, indent: int | None = None) -> str:
    """A parameter, output detail or payload as readable JSON (text as is); escaped later.
    `indent`: a block of its own (a <pre>), one key a line, as people read nested data."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, indent=indent)


# The values a stored text may put into a class, per prefix (ui.css styles each): anything
# else is `PREFIX-other`, so a sender's `critical x skip` cannot add the `skip` class.
CLASSES = {
    "sev": ("info", "warning", "error", "critical", "page", "ticket"),
    "decision": ("approved", "rejected", "timed_out"),
    "verdict": ("pass", "marginal", "fail", "nodata", "passed", "failed", "pending"),
    "silence": ("active", "pending", "expired"),
}


def _css(value: Any, prefix: str) -> str:
    """`{{ i.severity | css("sev") }}`: the class `sev-critical`, or `sev-other`."""
    return f"{prefix}-{value if value in CLASSES[prefix] else 'other'}"


_env.filters.update(age=_age, utc=_utc, data=_data, css=_css, counted=_counted)


class UiRefused(Exception):
    """A request the dashboard turns away: to the sign-in page (`status` 303) or with a page
    that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def route(method: str, path: str, scope: Scope | None) -> Callable[[Any], Any]:
    def register(handler: Any) -> Any:
        ROUTE_SCOPES[(method, "/ui" + path)] = scope
        router.add_api_route(path, handler, methods=[method])
        return handler

    return register


class SecurityHeaders:
    """HEADERS on every /ui response, an unknown path's 404 and an error's 500 included; a
    route that serves a document other than a page (an SVG image) keeps the CSP it set. Plain
    ASGI, not BaseHTTPMiddleware: the API's never-ending flag streams pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not _under_ui(path):
            await self.app(scope, receive, send)
            return

        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                own = headers.get("content-security-policy")  # an SVG chart's: ui/slos.py
                for name, value in HEADERS.items():
                    headers[name] = value
                if own is not None:
                    headers["content-security-policy"] = own
            await send(message)

        try:
            await self.app(scope, receive, secured)
        except Exception:
            # Starlette's 500 is sent outside this middleware, without the headers: this one
            # is sent inside, and the exception goes on to be logged as before.
            if not started:
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, secured)
            raise


def render(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    page = _env.get_template(name).render(now=clock(request), **values)
    return HTMLResponse(page, status_code=status)


def clock(request: Request) -> float:
    now: float = request.app.state.clock.now()
    return now


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiRefused)
    if exc.status == 303:
        return RedirectResponse("/ui/signin", status_code=303)
    # The session as it stands (no scope asked): signed in, the page keeps its nav.
    sessions: Sessions = request.app.state.ui_sessions
    session = sessions.get(request.cookies.get(COOKIE, ""), time.time())
    return render("refused.html", request, exc.status, message=str(exc), session=session)


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error (an unknown path, a method a route does not take) as the dashboard's
    page with its status under /ui; elsewhere the API's JSON, as before."""
    assert isinstance(exc, HTTPException)
    if not _under_ui(request.url.path):
        return await http_exception_handler(request, exc)
    page = await refused(request, UiRefused(exc.status_code, str(exc.detail)))
    page.headers.update(exc.headers or {})  # a 405's Allow
    return page


def _under_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


async def signed_in(request: Request, scope: Scope) -> Session:
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
    if not allows(record, scope) or not held(found, scope):
        raise UiRefused(403, f"token {found.token_name!r} lacks the {scope.value!r} scope")
    return found


async def lookup(call: Callable[[], T], ref: str) -> T:
    """`call` (a store read of the thing `ref` names) on a worker thread; an unknown id is a
    404 page, a short one several share a 409 (as the API says), a NUL a 422."""
    checked(ref)
    try:
        return await asyncio.to_thread(call)
    except NotFoundError as exc:
        raise UiRefused(409 if isinstance(exc, AmbiguousRef) else 404, str(exc)) from None


def checked(ref: str) -> str:
    """An id (or its start or end) from a URL; one with a NUL is refused (422): PostgreSQL
    cannot even compare text with it, and no stored id holds one."""
    if "\x00" in ref:
        raise UiRefused(422, "a NUL character cannot be in an id")
    return ref


def invalid(exc: ValidationError) -> UiRefused:
    """A 422 page naming each field that is wrong and why, as the API's 422 does."""
    said = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                     for e in exc.errors())  # fmt: skip
    return UiRefused(422, said)


def only(request: Request, *names: str) -> None:
    """A listing's query string: each of `names` at most once and nothing else, or a 422
    naming the parameter (a misspelt filter would filter nothing, a repeated one would have
    one of its values dropped unsaid)."""
    given = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted({name for name in given if name not in names})
    if unknown:
        known = ", ".join(names) or "none"
        raise UiRefused(422, f"unknown parameter {', '.join(map(repr, unknown))} (known: {known})")
    repeated = sorted({name for name in given if given.count(name) > 1})
    if repeated:
        raise UiRefused(422, f"{', '.join(repeated)}: given more than once")


def held(session: Session, scope: Scope) -> bool:
    return scope.value in session.scopes or Scope.ADMIN.value in session.scopes


async def form(request: Request, csrf: str, limit: int = FORM_MAX) -> dict[str, str]:
    """A POSTed form's fields (at most `limit` bytes), once its CSRF field matches `csrf`."""
    # Read with a running count: the API's front door leaves /ui bodies to this limit.
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UiRefused(413, f"a form of more than {limit} bytes is over the limit")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if not csrf or not hmac.compare_digest(fields.get("csrf", ""), csrf):
        raise UiRefused(403, "the form's CSRF token is missing or wrong: reload the page")
    return fields


def secure(request: Request) -> bool:
    # The API has no trusted-proxy setting, so X-Forwarded-Proto is not believed: Secure
    # follows the connection opsmedic itself serves.
    return request.url.scheme == "https"
