"""Read routes: events, runs, incidents and rules as JSON, newest first, with filters."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from opsmedic.api.auth import require
from opsmedic.errors import NotFoundError
from opsmedic.model import IncidentStatus, RunState
from opsmedic.store.public import event_json, incident_detail_json, incident_json, run_json
from opsmedic.tokens import Scope

router = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]
Since = Annotated[float | None, Query(description="epoch seconds")]


async def _store_call(request: Request, fn_name: str, *args: Any, **kwargs: Any) -> Any:
    # Reads run on worker threads: SQLite's WAL lets them go on while the engine writes.
    store = request.app.state.store
    if any(isinstance(v, str) and "\x00" in v for v in (*args, *kwargs.values())):
        # PostgreSQL cannot even compare text with NUL; no stored value holds one anyway.
        raise HTTPException(422, "a NUL character cannot be in an id or a filter")
    try:
        return await asyncio.to_thread(getattr(store, fn_name), *args, **kwargs)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/events", summary="Events, newest first")
async def list_events(
    request: Request,
    limit: Limit = 100,
    since: Since = None,
    source: str | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    found = await _store_call(request, "list_events", since=since, source=source, kind=kind,
                              limit=limit)  # fmt: skip
    return [event_json(e) for e in found]


@router.get("/events/{ref}", summary="One event by id (or its first or last characters)")
async def get_event(request: Request, ref: str) -> dict[str, Any]:
    return event_json(await _store_call(request, "get_event", ref))


@router.get("/runs", summary="Runs, newest first")
async def list_runs(
    request: Request,
    limit: Limit = 100,
    since: Since = None,
    rule: str | None = None,
    state: RunState | None = None,
) -> list[dict[str, Any]]:
    found = await _store_call(request, "list_runs", rule=rule, since=since, state=state,
                              limit=limit)  # fmt: skip
    return [run_json(r) for r in found]


@router.get("/runs/{ref}", summary="One run with its steps")
async def get_run(request: Request, ref: str) -> dict[str, Any]:
    return run_json(await _store_call(request, "get_run", ref))


@router.get("/incidents", summary="Incidents, newest first")
async def list_incidents(
    request: Request, limit: Limit = 100, since: Since = None, status: IncidentStatus | None = None
) -> list[dict[str, Any]]:
    found = await _store_call(request, "list_incidents", status=status, since=since, limit=limit)
    return [incident_json(i) for i in found]


@router.get("/incidents/{ref}", summary="One incident with its alerts and timeline")
async def get_incident(request: Request, ref: str) -> dict[str, Any]:
    return incident_detail_json(*await _store_call(request, "get_incident", ref))


@router.get("/rules", summary="The rules in force and the problems of the last reload")
async def list_rules(request: Request) -> dict[str, Any]:
    rt = request.app.state.rt
    return {
        "rules": [
            {"name": r.name, "description": r.description, "file": r.file, "line": r.line,
             "actions": r.actions, "queue": r.queue, "dry_run": r.dry_run}
            for r in rt.ruleset
        ],
        "errors": [str(p) for p in rt.rule_errors],
    }  # fmt: skip
