"""The Silences page: silences listed, made (from an incident's labels) and expired."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from opsmedic.config.matchers import SilenceIn, parse_matcher
from opsmedic.errors import AmbiguousRef, NotFoundError
from opsmedic.model import Event
from opsmedic.store.store import Store
from opsmedic.tokens import Scope
from opsmedic.ui.kit import UiRefused, checked, clock, form, held, only, render, route, signed_in
from opsmedic.ui.sessions import Session

SHOWN = 200  # silences listed; the page says when there are more
DEFAULT_DURATION = "2h"


@route("GET", "/silences", Scope.READ)
async def silences_page(request: Request, all: str = "") -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    only(request, "all")
    if all not in ("", "0", "1"):
        raise UiRefused(422, f"all: {all!r} is not 1 (expired ones too) or 0")
    now = clock(request)
    found = await asyncio.to_thread(
        request.app.state.store.silences.list, ending_after=None if all == "1" else now
    )
    if all == "1":  # latest end first: what still holds, then what ended last; old ones cut
        found.reverse()
    return render("silences.html", request, session=session, page="silences", all=all == "1",
                  silences=[s.as_dict(now) for s in found[:SHOWN]], total=len(found),
                  can_operate=held(session, Scope.OPERATE))  # fmt: skip


@route("GET", "/silences/new", Scope.OPERATE)
async def new_silence_page(request: Request, incident: str = "") -> HTMLResponse:
    session = await signed_in(request, Scope.OPERATE)
    values = {"matchers": "", "duration": DEFAULT_DURATION, "comment": "", "incident": ""}
    skipped: list[str] = []
    if incident:
        store = request.app.state.store
        try:
            found, event = await asyncio.to_thread(_latest_event, store, checked(incident))
        except NotFoundError as exc:
            raise UiRefused(409 if isinstance(exc, AmbiguousRef) else 404, str(exc)) from None
        lines, skipped = prefill(event) if event is not None else ([], [])
        values.update(matchers="\n".join(lines), incident=found)
    return render("silences_new.html", request, session=session, page="silences",
                  values=values, skipped=skipped, error="")  # fmt: skip


@route("POST", "/silences", Scope.OPERATE)
async def add_silence(request: Request) -> Response:
    """What `POST /api/v1/silences` does, from the form: the same model and checks."""
    session = await signed_in(request, Scope.OPERATE)
    fields = await form(request, session.csrf)
    values = {k: fields.get(k, "") for k in ("matchers", "duration", "comment", "incident")}
    lines = [line.strip() for line in values["matchers"].splitlines() if line.strip()]
    asked: dict[str, Any] = {"matchers": lines, "comment": values["comment"].strip(),
                             "duration": values["duration"].strip() or None}  # fmt: skip
    now = clock(request)
    try:
        silence = SilenceIn.model_validate(asked).silence(now, f"ui {session.token_name}")
    except ValidationError as exc:
        error = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                          for e in exc.errors())  # fmt: skip
        return _refill(request, session, values, error)
    except ValueError as exc:
        return _refill(request, session, values, f"silence: {exc}")
    await asyncio.to_thread(request.app.state.store.silences.add, silence)
    request.app.state.engine.muting.changed()  # held from the next batch on, as the API's
    return RedirectResponse(f"/ui/silences#silence-{silence.id}", status_code=303)


def _refill(request: Request, session: Session, values: dict[str, str], error: str) -> HTMLResponse:
    """The form again with what was typed, saying what is wrong (422: nothing was made)."""
    return render("silences_new.html", request, 422, session=session, page="silences",
                  values=values, skipped=[], error=error)  # fmt: skip


@route("GET", "/silences/{ref}/expire", Scope.OPERATE)
async def expire_page(request: Request, ref: str) -> HTMLResponse:
    """The confirmation step: what expiring this silence lets through again."""
    session = await signed_in(request, Scope.OPERATE)
    now = clock(request)
    found = await asyncio.to_thread(request.app.state.store.silences.list)
    silence = next((s for s in found if s.id == ref), None)
    if silence is None:
        raise UiRefused(404, f"no silence {ref!r}")
    return render("silences_expire.html", request, session=session, page="silences",
                  silence=silence.as_dict(now))  # fmt: skip


@route("POST", "/silences/{ref}/expire", Scope.OPERATE)
async def expire(request: Request, ref: str) -> Response:
    """What `DELETE /api/v1/silences/ID` does: the store moves its end to now."""
    session = await signed_in(request, Scope.OPERATE)
    await form(request, session.csrf)
    store = request.app.state.store
    try:
        silence = await asyncio.to_thread(store.silences.expire, checked(ref), clock(request))
    except NotFoundError as exc:
        raise UiRefused(409 if isinstance(exc, AmbiguousRef) else 404, str(exc)) from None
    request.app.state.engine.muting.changed()
    return RedirectResponse(f"/ui/silences?all=1#silence-{silence.id}", status_code=303)


def _latest_event(store: Store, ref: str) -> tuple[str, Event | None]:
    """The incident's id and the last event it received (None if its timeline names none)."""
    incident, _, timeline = store.get_incident(ref)
    received = [line.ref for line in timeline if line.kind == "event_received" and line.ref]
    return incident.id, store.get_event(received[-1]) if received else None


def prefill(event: Event) -> tuple[list[str], list[str]]:
    """An `=` matcher per label of `event` (its source, kind, resource and host when it has
    none), and the names of those a matcher cannot say on one line of the form."""
    pairs = [(f"labels.{k}", v) for k, v in sorted(event.labels.items())] or [
        (f, str(getattr(event, f))) for f in ("source", "kind", "resource", "host")
        if getattr(event, f)
    ]  # fmt: skip
    lines, skipped = [], []
    for name, value in pairs:
        text = next((t for t in (f"{name}={value}", f'{name}="{value}"') if _says(t, name, value)),
                    None)  # fmt: skip
        if text is None:
            skipped.append(name)
        else:
            lines.append(text)
    return lines, skipped


def _says(text: str, name: str, value: str) -> bool:
    """Whether the matcher `text`, one line of the form, parses back to `name` = `value`."""
    if text.splitlines() != [text]:
        return False
    try:
        matcher = parse_matcher(text)
    except ValueError:
        return False
    return (matcher.name, matcher.op, matcher.value) == (name, "=", value)
