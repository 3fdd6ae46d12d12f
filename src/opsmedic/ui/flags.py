"""The dashboard's Flags pages: every flag (the invalid rows apart), a flag with its history,
and switching or rolling one out through the FlagService calls the API makes."""

from __future__ import annotations

import re
from collections.abc import Awaitable

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsmedic.flagops.refusals import REFUSALS, refusal
from opsmedic.flagops.service import FlagService
from opsmedic.flagops.views import FlagChangeView, FlagListView, FlagView
from opsmedic.flags.changes import Author, FlagRecord
from opsmedic.flags.model import FLAG_KEY_PATTERN
from opsmedic.tokens import Scope
from opsmedic.ui.kit import UiRefused, form, held, only, render, route, signed_in

SHOWN = 500  # flags on the list page; it says how many there are in all
HISTORY = 50  # a flag's newest changes on its page
QUERY_MAX = 100  # a key has at most 100 characters
VERSION_MAX = 999_999_999
_KEY = re.compile(FLAG_KEY_PATTERN)
_ENABLED = {"on": True, "off": False}


def _service(request: Request) -> FlagService:
    service: FlagService = request.app.state.flags
    return service


def _key(key: str) -> str:
    if not _KEY.fullmatch(key):  # `$` alone would take a trailing newline
        raise UiRefused(422, f"key: {key!r} is not a flag key (letters, digits, _ . -)")
    return key


async def _answer(change: Awaitable[FlagRecord]) -> FlagRecord:
    """A service call; its refusals as the API answers them, on a page."""
    try:
        return await change
    except REFUSALS as exc:
        raise UiRefused(*refusal(exc)) from None


@route("GET", "/flags", Scope.READ)
async def flags_page(request: Request, q: str = "", enabled: str = "") -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    only(request, "q", "enabled")
    if len(q) > QUERY_MAX or "\x00" in q:
        raise UiRefused(422, f"q: at most {QUERY_MAX} characters, no NUL")
    if enabled and enabled not in _ENABLED:
        raise UiRefused(422, f"enabled: {enabled!r} is neither on nor off")
    listing = FlagListView.of(await _service(request).listing())
    found = [f for f in listing.flags if q.lower() in f.key.lower()
             and (not enabled or f.flag["enabled"] is _ENABLED[enabled])]  # fmt: skip
    return render("flags.html", request, session=session, page="flags", flags=found[:SHOWN],
                  total=len(found), problems=listing.problems, q=q, enabled=enabled)  # fmt: skip


@route("GET", "/flags/{key}", Scope.READ)
async def flag_page(request: Request, key: str) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    service = _service(request)
    record = await _answer(service.get(_key(key)))
    found = await service.history(key, HISTORY + 1)
    changes = [FlagChangeView.of(c) for c in found[:HISTORY]]
    return render("flags_one.html", request, session=session, page="flags",
                  f=FlagView.of(record), changes=changes, more=len(found) > HISTORY,
                  can_operate=held(session, Scope.OPERATE))  # fmt: skip


def _whole(fields: dict[str, str], name: str, low: int, high: int) -> int:
    value = fields.get(name, "")
    if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise UiRefused(422, f"{name}: {value!r} is not a whole number from {low} to {high}")
    return int(value)


async def _change(request: Request, key: str) -> tuple[dict[str, str], Author, int]:
    """The checked form of a change to `key`: its fields, its author and expected version."""
    session = await signed_in(request, Scope.OPERATE)
    fields = await form(request, session.csrf)
    _key(key)
    # The version the page showed: a change made since is a 409, never overwritten.
    expected = _whole(fields, "expected_version", 1, VERSION_MAX)
    if fields.get("confirm") != "yes":
        raise UiRefused(422, "confirm: tick the box that names the change to confirm it")
    return fields, Author("api", f"{session.token_name} (dashboard)"), expected


@route("POST", "/flags/{key}/enabled", Scope.OPERATE)
async def set_enabled(request: Request, key: str) -> Response:
    fields, by, expected = await _change(request, key)
    on = fields.get("enabled", "")
    if on not in _ENABLED:
        raise UiRefused(422, f"enabled: {on!r} is neither on nor off")
    await _answer(_service(request).set_enabled(key, _ENABLED[on], by, expected))
    return RedirectResponse(f"/ui/flags/{key}", status_code=303)


@route("POST", "/flags/{key}/rollout", Scope.OPERATE)
async def set_rollout(request: Request, key: str) -> Response:
    fields, by, expected = await _change(request, key)
    percentage = _whole(fields, "percentage", 0, 100)
    await _answer(_service(request).rollout(key, percentage, by, expected))
    return RedirectResponse(f"/ui/flags/{key}", status_code=303)
