"""The Runs pages: the run listing with the API's filters, and one run with its steps."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from opsmedic.errors import NotFoundError
from opsmedic.model import Event, RunState
from opsmedic.store.run_query import RunFilter
from opsmedic.store.store import Store
from opsmedic.tokens import Scope
from opsmedic.ui.kit import invalid, lookup, only, render, route, signed_in
from opsmedic.views import EventView, RunDetailView, RunView

SHOWN = 100  # runs on one page, the newest; the page says how many match in all
COUNTED = 10_000  # matching runs counted at most: past that the page says "more than"
FILTERS = tuple(RunFilter.model_fields)


def run_filter(request: Request) -> RunFilter:
    """The query string's filters, parsed by the code `GET /api/v1/runs` parses them with
    (an empty field is no filter: what a form sends for a box left blank)."""
    only(request, *FILTERS)
    given = {k: v for k, v in request.query_params.items() if k in FILTERS and v.strip()}
    try:
        return RunFilter.model_validate(given)
    except ValidationError as exc:
        raise invalid(exc) from None


@route("GET", "/runs", Scope.READ)
async def runs_page(request: Request) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    where = run_filter(request)
    store: Store = request.app.state.store
    found, total = await asyncio.to_thread(store.run_reads.page, where, SHOWN, COUNTED)
    rules = sorted(rule.name for rule in request.app.state.rules.ruleset)
    given = {k: request.query_params.get(k, "") for k in FILTERS}
    return render("runs.html", request, session=session, page="runs", total=total, counted=COUNTED,
                  runs=[RunView.of(r) for r in found], given=given, rules=rules,
                  states=[s.value for s in RunState])  # fmt: skip


@route("GET", "/runs/{ref}", Scope.READ)
async def run_page(request: Request, ref: str) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    store: Store = request.app.state.store
    run = await lookup(lambda: store.get_run(ref), ref)
    waits = await asyncio.to_thread(store.approvals.of_run, run.id)
    event = await asyncio.to_thread(_event, store, run.event_id)
    detail = RunDetailView.of_waits(run, waits)
    return render("run.html", request, session=session, page="runs", run=detail,
                  event=None if event is None else EventView.of(event),
                  durations=[_took(s.duration_ms) for s in run.steps])  # fmt: skip


def _event(store: Store, event_id: str) -> Event | None:
    try:
        return store.get_event(event_id)
    except NotFoundError:  # pruned since: the run says so rather than failing
        return None


def _took(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
