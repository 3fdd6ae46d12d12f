"""Ingest routes: generic events and the monitoring tools' webhooks → committed events → 202."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from opsmedic.api.body import decode_json, read_limited
from opsmedic.errors import StoreRefused, WebhookError, WebhookRefused
from opsmedic.model import OWN_SOURCE, Event
from opsmedic.plugins import WebhookSpec
from opsmedic.sources.events import EventIn, parse_event
from opsmedic.tokens import Scope

MAX_EVENTS = 10_000  # per request: a bigger batch is a client bug or an attack
MAX_FUTURE_S = 300.0  # clock skew allowed to a sender's event time
# What senders hear when the store fails; the details (paths, SQL) go to the log only.
STORE_DOWN = "the store is unavailable; nothing was accepted, retry later"

# No router-level auth dependency: `accept` checks the token itself, because the ingest fast
# path (api/fastpath.py) calls it without FastAPI's dependency machinery.
router = APIRouter(prefix="/api/v1", tags=["ingest"])
EVENTS_PATH = "/api/v1/events"
WEBHOOKS_PREFIX = "/api/v1/webhooks/"


class HeldRun(BaseModel):
    """A rule the event matched whose run was held (docs/rules.md#held-while-a-dependency-fails)."""

    rule: str
    reason: str


class RuleDecision(BaseModel):
    """What one rule the event matched came to (docs/decisions.md): only `planned` ran."""

    rule: str
    outcome: str = Field(description="planned, throttled, waiting_for, in_flight, over_limit, "
                                     "silenced, inhibited, held or disabled")  # fmt: skip
    detail: str | None = Field(None, description="why, in words; the run id when planned")


class AcceptedEvent(BaseModel):
    id: str
    run_ids: list[str]
    incident_id: str | None = None
    held: list[HeldRun] | None = Field(None, description="only when a match was held")
    decisions: list[RuleDecision] = Field(
        default_factory=list, description="each rule the event matched, with its outcome"
    )


class IngestReply(BaseModel):
    """The committed events, the runs they planned, and the incident each joined."""

    accepted: int
    events: list[AcceptedEvent]


Reply = dict[str, Any]  # an IngestReply as plain data (see _submit)


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
async def post_events(request: Request) -> Reply:
    return await accept(request, None)


async def accept(request: Request, source: str | None) -> Reply:
    """Check the token, read and map the body, commit the events: the one ingest path.

    `source` names a webhook (a key of app.state.webhooks); None is the generic event API.
    Raises HTTPException.
    """
    await request.app.state.auth.check(request, Scope.INGEST)
    raw = await read_limited(request, request.app.state.max_body)
    if source is None:
        return await _generic(request, raw)
    spec, settings = request.app.state.webhooks[source]
    if spec.verify is not None:
        try:
            spec.verify(raw, request.headers, settings)
        except WebhookRefused as exc:
            raise HTTPException(401, str(exc)) from None
    try:
        events = spec.parse(decode_json(raw, request.app.state.json_limits))
    except WebhookError as exc:
        raise HTTPException(422, str(exc)) from None
    latest = time.time() + MAX_FUTURE_S
    for event in events:
        if event.time > latest:  # a sender's clock ahead: keep its time, act on ours
            event.payload["sent_time"], event.time = event.time, time.time()
    return await _submit(request, events)


async def _generic(request: Request, raw: bytes) -> Reply:
    data = decode_json(raw, request.app.state.json_limits)
    items = data.get("events") if isinstance(data, dict) and "events" in data else data
    where = "events" if items is not data else ""
    if isinstance(items, dict):
        events = [_event(items, where or "body")]
    elif isinstance(items, list):
        events = [_event(e, f"{where}[{i}]") for i, e in enumerate(items)]
    else:
        raise HTTPException(422, f"{where or 'body'}: expected an event object or a list of them")
    return await _submit(request, events)


def _event(data: Any, where: str) -> Event:
    """One generic event; opsmedic assigns its id (a client's `id` is kept as payload.client_id).

    Ids chosen by senders could clash, and one clash would fail the commit it shares with
    every other sender's events.
    """
    client_id = data.pop("id", None) if isinstance(data, dict) else None
    try:
        event = parse_event(data)
    except ValueError as exc:
        raise HTTPException(422, f"{where}: {exc}") from None
    if event.source == OWN_SOURCE:
        # Rules trust these (a deployment rolled back, a flag turned off, an escalation):
        # an ingest token must not be able to forge them.
        raise HTTPException(
            422,
            f"{where}: source: {OWN_SOURCE!r} is reserved for the events opsmedic makes "
            "itself (deployments, flags, escalations)",
        )
    if client_id is not None:
        event.payload["client_id"] = client_id
    skew = event.time - time.time()
    if skew > MAX_FUTURE_S:
        # Throttles and limits run on event time: a date in the future would mute a rule
        # for that target until then.
        raise HTTPException(422, f"{where}: time: {skew:.0f} s in the future (at most "
                                 f"{MAX_FUTURE_S:.0f} s of clock skew)")  # fmt: skip
    return event


def webhook_router(webhooks: Iterable[WebhookSpec[Any]]) -> APIRouter:
    """One route per webhook, at WEBHOOKS_PREFIX + its name; a name without one is a 404."""
    webhook_routes = APIRouter(tags=["ingest"])
    for spec in webhooks:
        webhook_routes.add_api_route(
            WEBHOOKS_PREFIX + spec.name, _receiver(spec.name), methods=["POST"], status_code=202,
            response_model=IngestReply, name=f"webhook_{spec.name}",
            summary=f"Receive {spec.name}'s webhook (see docs/webhooks.md)",
            openapi_extra=_one_of_many({"type": "object"}),
        )  # fmt: skip
    return webhook_routes


def _receiver(source: str) -> Callable[[Request], Awaitable[Reply]]:
    async def receive(request: Request) -> Reply:
        return await accept(request, source)

    return receive


async def _submit(request: Request, events: list[Event]) -> Reply:
    if len(events) > MAX_EVENTS:
        raise HTTPException(413, f"{len(events)} events in one request; at most {MAX_EVENTS}")
    try:
        accepted = await request.app.state.engine.submit(events) if events else []
    except StoreRefused as exc:  # this request's data, not the store: it fails alone
        raise HTTPException(422, f"{exc}; nothing was accepted") from None
    request.app.state.metrics.received(events)  # counted once committed, not before
    # Plain dicts in the shape of IngestReply: built once per request on the hot path, where
    # validating models we just made would cost more than the rest of the reply.
    return {
        "accepted": len(accepted),
        "events": [
            {
                "id": a.event_id,
                "run_ids": a.run_ids,
                "incident_id": e.incident_id or None,
                "decisions": [
                    {"rule": d.rule, "outcome": d.outcome, "detail": d.detail}
                    if d.detail
                    else {"rule": d.rule, "outcome": d.outcome}
                    for d in a.decisions
                ],
            }
            | ({"held": [{"rule": r, "reason": why} for r, why in a.held]} if a.held else {})
            for a, e in zip(accepted, events, strict=True)
        ],
    }
