"""Read routes: events, runs, incidents and rules as JSON, newest first, with filters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from opsmedic.api.auth import require
from opsmedic.api.live_rules import LiveRules
from opsmedic.errors import AmbiguousRef, NotFoundError
from opsmedic.model import IncidentStatus
from opsmedic.store.run_query import RunFilter
from opsmedic.store.store import Store
from opsmedic.tokens import Scope
from opsmedic.views import (
    EventView,
    IncidentDetailView,
    IncidentView,
    RulesView,
    RunDetailView,
    RunView,
)

router = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]
Since = Annotated[float | None, Query(description="epoch seconds", allow_inf_nan=False)]
T = TypeVar("T")


async def _read(call: Callable[[], T], *texts: str | None) -> T:
    """`call` on a worker thread, `texts` being the ids and filters it reads by; an unknown
    id is a 404, a short one several ids share a 409. Reads run on threads: SQLite's WAL
    lets them go on while the engine writes."""
    if any(t is not None and "\x00" in t for t in texts):
        # PostgreSQL cannot even compare text with NUL; no stored value holds one anyway.
        raise HTTPException(422, "a NUL character cannot be in an id or a filter")
    try:
        return await asyncio.to_thread(call)
    except AmbiguousRef as exc:
        raise HTTPException(409, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/events", summary="Events, newest first")
async def list_events(
    request: Request,
    limit: Limit = 100,
    since: Since = None,
    source: str | None = None,
    kind: str | None = None,
) -> list[EventView]:
    store = _store(request)
    found = await _read(lambda: store.list_events(since=since, source=source, kind=kind,
                                                  limit=limit), source, kind)  # fmt: skip
    return [EventView.of(e) for e in found]


@router.get("/events/{ref}", summary="One event by id (or its first or last characters)")
async def get_event(request: Request, ref: str) -> EventView:
    store = _store(request)
    return EventView.of(await _read(lambda: store.get_event(ref), ref))


@router.get("/runs", summary="Runs, newest first")
async def list_runs(
    request: Request, where: Annotated[RunFilter, Query()], limit: Limit = 100
) -> list[RunView]:
    store = _store(request)
    found = await _read(lambda: store.run_reads.find(where, limit))
    return [RunView.of(r) for r in found]


@router.get("/runs/{ref}", summary="One run with its steps and its waits for approval")
async def get_run(request: Request, ref: str) -> RunDetailView:
    store = _store(request)
    run = await _read(lambda: store.get_run(ref), ref)
    return RunDetailView.of_waits(run, await _read(lambda: store.approvals.of_run(run.id), ref))


@router.get("/incidents", summary="Incidents, newest first")
async def list_incidents(
    request: Request, limit: Limit = 100, since: Since = None, status: IncidentStatus | None = None
) -> list[IncidentView]:
    store = _store(request)
    found = await _read(lambda: store.list_incidents(status=status, since=since, limit=limit))
    return [IncidentView.model_validate(i) for i in found]


@router.get(
    "/incidents/{ref}", summary="One incident with its alerts, timeline and latest log hunt"
)
async def get_incident(request: Request, ref: str) -> IncidentDetailView:
    store = _store(request)
    incident, alerts, timeline = await _read(lambda: store.get_incident(ref), ref)
    hunt = await _read(lambda: store.loghunts.latest(incident.id))
    return IncidentDetailView.of(incident, alerts, timeline, hunt)


@router.get("/rules", summary="The rules in force and the problems of the last reload")
async def list_rules(request: Request) -> RulesView:
    rules: LiveRules = request.app.state.rules
    return RulesView.model_validate(
        {"rules": list(rules.ruleset), "errors": [str(p) for p in rules.rule_errors]}
    )
