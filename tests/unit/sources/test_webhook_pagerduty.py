"""PagerDuty → Events: webhooks v3 incident events and Events API v2 bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from webhook_payloads import PAGERDUTY_V2, PAGERDUTY_V3, PAGERDUTY_V3_FULL, load

from opsmedic.errors import WebhookError
from opsmedic.model import Status
from opsmedic.sources.webhooks.pagerduty import parse


def v3(event_type: str) -> dict[str, Any]:
    body: dict[str, Any] = load(PAGERDUTY_V3_FULL)
    body["event"]["event_type"] = event_type
    return body


def test_it_maps_the_documented_v3_event() -> None:
    (event,) = parse(load(PAGERDUTY_V3))
    assert event.source == "pagerduty"
    assert event.status is Status.FIRING
    assert event.kind == "…"
    assert event.fingerprint == "pagerduty:…"  # the incident id
    assert event.time > 0  # "…" is no time: stamped on arrival


def test_it_maps_a_full_v3_incident() -> None:
    (event,) = parse(load(PAGERDUTY_V3_FULL))
    assert event.kind == "The server is on fire."
    assert event.resource == "checkout"
    assert event.labels == {"service": "checkout", "priority": "P1", "urgency": "high"}
    assert event.severity == "critical"  # P1 before the urgency
    assert event.fingerprint == "pagerduty:baf7cf21b1da41b4b0221008339ff357"  # incident_key
    assert event.time == datetime(2026, 5, 20, 14, tzinfo=UTC).timestamp()
    assert event.payload["event"]["data"]["number"] == 1234


@pytest.mark.parametrize(
    ("event_type", "status"),
    [("incident.triggered", Status.FIRING), ("incident.reopened", Status.FIRING),
     ("incident.resolved", Status.RESOLVED)],
)  # fmt: skip
def test_v3_types_that_open_or_close(event_type: str, status: Status) -> None:
    (event,) = parse(v3(event_type))
    assert event.status is status
    assert event.fingerprint == "pagerduty:baf7cf21b1da41b4b0221008339ff357"


@pytest.mark.parametrize(
    "event_type",
    ["incident.acknowledged", "incident.unacknowledged", "incident.escalated",
     "incident.delegated", "incident.reassigned", "incident.priority_updated",
     "incident.annotated", "incident.responder.added", "incident.responder.replied",
     "incident.status_update_published", "service.created", "pagey.ping"],
)  # fmt: skip
def test_other_v3_types_give_no_event(event_type: str) -> None:
    body = v3(event_type)
    body["event"]["data"] = {"incident": {"id": "PT4KHLK"}, "content": "a note"}
    assert parse(body) == []


def test_v3_severity_falls_back_to_urgency_and_key_to_the_incident_id() -> None:
    body = load(PAGERDUTY_V3_FULL)
    data = body["event"]["data"]
    data.update(priority=None, urgency="low")
    del data["incident_key"]
    (event,) = parse(body)
    assert event.severity == "info"
    assert event.labels == {"service": "checkout", "urgency": "low"}
    assert event.fingerprint == "pagerduty:PT4KHLK"


def test_it_maps_the_documented_v2_trigger() -> None:
    (event,) = parse(load(PAGERDUTY_V2))
    assert event.status is Status.FIRING
    assert event.kind == "checkout 5xx 12%"
    assert event.host == "checkout-prod"
    assert event.severity == "critical"
    assert event.fingerprint == "pagerduty:checkout-5xx"


def test_the_v2_routing_key_is_not_kept() -> None:
    (event,) = parse(load(PAGERDUTY_V2))
    assert "routing_key" not in event.payload
    assert "R0UTINGKEY" not in repr(event.as_dict())
    assert event.payload["dedup_key"] == "checkout-5xx"


def test_a_v2_resolve_meets_its_trigger() -> None:
    (fired,) = parse(load(PAGERDUTY_V2))
    (done,) = parse({"routing_key": "R0UTINGKEY", "event_action": "resolve",
                     "dedup_key": "checkout-5xx"})  # fmt: skip
    assert done.status is Status.RESOLVED
    assert done.fingerprint == fired.fingerprint


def test_a_v2_acknowledge_gives_no_event() -> None:
    assert parse({"event_action": "acknowledge", "dedup_key": "checkout-5xx"}) == []


def test_v2_details_component_group_class_and_time() -> None:
    body = load(PAGERDUTY_V2)
    body["payload"].update(
        component="nginx", group="prod-web", **{"class": "disk"},
        custom_details={"mount": "/var/log", "used": 93.5, "group": "mine"},
        timestamp="2026-11-22T02:01:16.123+00:00",
    )  # fmt: skip
    (event,) = parse(body)
    assert event.resource == "nginx"
    assert event.labels == {"mount": "/var/log", "used": "93.5", "group": "mine", "class": "disk"}
    assert event.time == datetime(2026, 11, 22, 2, 1, 16, 123000, tzinfo=UTC).timestamp()


def test_v2_details_that_are_not_an_object_stay_in_the_payload() -> None:
    body = load(PAGERDUTY_V2)
    body["payload"]["custom_details"] = "disk at 93%"
    (event,) = parse(body)
    assert event.labels == {}
    assert event.payload["payload"]["custom_details"] == "disk at 93%"


@pytest.mark.parametrize(
    ("body", "message"),
    [(["event"], "body: expected an object, got list"),
     ({"messages": []},
      "body: expected a webhook v3 body (event) or an Events API v2 body (event_action)"),
     ({"event": "incident.triggered"}, "event: expected an object, got string"),
     ({"event": {}}, "event.event_type: missing"),
     ({"event": {"event_type": "incident.triggered"}}, "event.data: missing"),
     ({"event": {"event_type": "incident.resolved", "data": []}},
      "event.data: expected an object, got list"),
     ({"event": {"event_type": "incident.triggered", "data": {"service": "checkout"}}},
      "event.data.service: expected an object, got string"),
     ({"event": {"event_type": "incident.triggered", "data": {"priority": {"summary": []}}}},
      "event.data.priority.summary: expected text, got list"),
     ({"event_action": "snooze"},
      "event_action: expected one of trigger, resolve, acknowledge, got 'snooze'"),
     ({"event_action": None}, "event_action: missing"),
     ({"event_action": "resolve"}, "dedup_key: missing (a resolve names the alert it resolves)"),
     ({"event_action": "trigger", "payload": {"source": "x"}}, "payload.summary: missing"),
     ({"event_action": "trigger", "payload": "x"}, "payload: expected an object, got string"),
     ({"event_action": "trigger", "payload": {"summary": "x", "custom_details": {"a": 10**5000}}},
      "payload.custom_details.a: cannot be read as text (number)")],
)  # fmt: skip
def test_bad_shapes_name_where(body: Any, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message
