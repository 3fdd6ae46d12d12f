"""Ingest routes: generic events and the monitoring tools' webhooks → committed events → 202."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from opsmedic.api.body import decode_json, read_limited
from opsmedic.model import Event
from opsmedic.sources.events import EventIn, parse_event
from opsmedic.sources.webhooks import PARSERS, WebhookError, parse_webhook
from opsmedic.sources.webhooks.signature import verify_pagerduty_signature
from opsmedic.tokens import Scope

MAX_EVENTS = 10_000  # per request: a bigger batch is a client bug or an attack

# No router-level auth dependency: `accept` checks the token itself, because the ingest fast
# path (api/fastpath.py) calls it without FastAPI's dependency machinery.
router = APIRouter(prefix="/api/v1", tags=["ingest"])
EVENTS_PATH = "/api/v1/events"
WEBHOOK_PATHS = {f"/api/v1/webhooks/{source}": source for source in PARSERS}


class AcceptedEvent(BaseModel):
    id: str
    run_ids: list[str]
    incident_id: str | None = None


class IngestReply(BaseModel):
    """The committed events, the runs they planned, and the incident each joined."""

    accepted: int
    events: list[AcceptedEvent]


def _one_of_many(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_EVENT_SCHEMA = EventIn.model_json_schema(ref_template="#/components/schemas/{model}")


@router.post(
    "/events",
    status_code=202,
    response_model=IngestReply,
    summary='Post one event, a list of events, or {"events": [...]}',
    openapi_extra=_one_of_many(
        {
            "oneOf": [
                {k: v for k, v in _EVENT_SCHEMA.items() if k != "$defs"},
                {"type": "array", "items": {"type": "object"}},
            ]
        }
    ),
)
async def post_events(request: Request) -> IngestReply:
    return await accept(request, None)


async def accept(request: Request, source: str | None) -> IngestReply:
    """Check the token, read and map the body, commit the events: the one ingest path.

    `source` names a webhook format; None is the generic event API. Raises HTTPException.
    """
    await request.app.state.auth.check(request, Scope.INGEST)
    raw = await read_limited(request, request.app.state.max_body)
    if source is None:
        return await _generic(request, raw)
    if source == "pagerduty":
        _check_pagerduty_signature(request, raw)
    try:
        events = parse_webhook(source, decode_json(raw))
    except WebhookError as exc:
        raise HTTPException(422, str(exc)) from None
    return await _submit(request, events)


async def _generic(request: Request, raw: bytes) -> IngestReply:
    data = decode_json(raw)
    items = data.get("events") if isinstance(data, dict) and "events" in data else data
    where = "events" if items is not data else ""
    if isinstance(items, dict):
        events = [_event(items, where or "body")]
    elif isinstance(items, list):
        events = [_event(e, f"{where}[{i}]") for i, e in enumerate(items)]
    else:
        raise HTTPException(422, f"{where or 'body'}: expected an event object or a list of them")
    await _check_ids(
        request, [e.id for e, given in zip(events, _given_ids(items), strict=True) if given]
    )
    return await _submit(request, events)


def _given_ids(items: Any) -> list[bool]:
    rows = [items] if isinstance(items, dict) else items
    return [bool(row.get("id")) for row in rows]


async def _check_ids(request: Request, ids: list[str]) -> None:
    """Ids chosen by the client must be new: a clash would fail the whole shared commit."""
    if not ids:
        return
    if len(set(ids)) < len(ids):
        raise HTTPException(422, "the same event id appears twice in this request")
    taken = await asyncio.to_thread(request.app.state.store.existing_event_ids, ids)
    if taken:
        raise HTTPException(409, f"event id already stored: {', '.join(sorted(taken)[:5])}")


def _event(data: Any, where: str) -> Event:
    try:
        return parse_event(data)
    except ValueError as exc:
        raise HTTPException(422, f"{where}: {exc}") from None


def _webhook_route(source: str) -> None:
    async def receive(request: Request) -> IngestReply:
        return await accept(request, source)

    router.add_api_route(
        f"/webhooks/{source}", receive, methods=["POST"], status_code=202,
        response_model=IngestReply, name=f"webhook_{source}",
        summary=f"Receive {source}'s webhook (see docs/webhooks.md)",
        openapi_extra=_one_of_many({"type": "object"}),
    )  # fmt: skip


for _source in PARSERS:
    _webhook_route(_source)


def _check_pagerduty_signature(request: Request, raw: bytes) -> None:
    secrets = request.app.state.pagerduty_secrets
    if not secrets:
        return
    header = request.headers.get("x-pagerduty-signature")
    if not verify_pagerduty_signature(raw, header, secrets):
        raise HTTPException(401, "X-PagerDuty-Signature is missing or does not match")


async def _submit(request: Request, events: list[Event]) -> IngestReply:
    if len(events) > MAX_EVENTS:
        raise HTTPException(413, f"{len(events)} events in one request; at most {MAX_EVENTS}")
    request.app.state.metrics.received(events)
    accepted = await request.app.state.engine.submit(events) if events else []
    by_id = {e.id: e for e in events}
    return IngestReply(
        accepted=len(accepted),
        events=[
            AcceptedEvent(id=a.event_id, run_ids=a.run_ids,
                          incident_id=by_id[a.event_id].incident_id or None)
            for a in accepted
        ],
    )  # fmt: skip
