"""Opsgenie's outgoing webhook → Events: Create fires, Close resolves, other actions are none."""

from __future__ import annotations

from typing import Any

import pytest
from webhook_payloads import OPSGENIE, load

from opsmedic.errors import WebhookError
from opsmedic.model import Status
from opsmedic.sources.webhooks.opsgenie import parse


def closed(**alert: Any) -> dict[str, Any]:
    body: dict[str, Any] = load(OPSGENIE)
    body["action"] = "Close"
    body["alert"].update(updatedAt=1593475864295000000, **alert)
    return body


def test_it_maps_the_documented_create() -> None:
    (event,) = parse(load(OPSGENIE))
    assert event.source == "opsgenie"
    assert event.status is Status.FIRING
    assert event.kind == "checkout 5xx"
    assert event.severity == "warning"  # P3
    assert event.fingerprint == "opsgenie:checkout-5xx"
    assert event.time == 1593475564.295
    assert event.payload["integrationType"] == "Webhook"


@pytest.mark.parametrize(
    ("priority", "severity"),
    [(1, "critical"), (2, "error"), (3, "warning"), (4, "info"), (5, "info"),
     (1.0, "critical"), (3.0, "warning"), ("1", "critical"), ("P1", "critical"),
     ("p2", "error"), (None, "info")],
)  # fmt: skip
def test_a_numeric_priority_means_the_same_as_p1_to_p5(priority: Any, severity: str) -> None:
    """The documented Create body (REFERENCE, Opsgenie's webhook integration docs: `priority`
    "P1" … "P5"), with the priority as the bare number some senders use."""
    body = load(OPSGENIE)
    body["alert"]["priority"] = priority
    (event,) = parse(body)
    assert event.severity == severity


@pytest.mark.parametrize("priority", [0, 6, 7, -3, 1.5, 3.01, 10**50])
def test_a_number_outside_p1_to_p5_is_refused_naming_the_place(priority: Any) -> None:
    """Opsgenie documents only P1-P5: `7` is a broken body, not a quiet `info`."""
    body = load(OPSGENIE)
    body["alert"]["priority"] = priority
    with pytest.raises(WebhookError, match=r"alert\.priority.*1-5"):
        parse(body)


def test_close_resolves_the_same_alert_at_its_update_time() -> None:
    (created,) = parse(load(OPSGENIE))
    (done,) = parse(closed())
    assert done.status is Status.RESOLVED
    assert done.fingerprint == created.fingerprint
    assert done.time == pytest.approx(1593475864.295)  # updatedAt is in nanoseconds


def test_delete_resolves_too() -> None:
    body = closed()
    body["action"] = "Delete"
    (event,) = parse(body)
    assert event.status is Status.RESOLVED


@pytest.mark.parametrize(
    "action",
    ["Acknowledge", "UnAcknowledge", "AddNote", "AssignOwnership", "Escalate", "Snooze",
     "UpdatePriority", "CustomAction", "SomethingNew"],
)  # fmt: skip
def test_actions_that_leave_the_problem_as_it_is_give_no_event(action: str) -> None:
    body = load(OPSGENIE)
    body["action"] = action
    assert parse(body) == []


def test_actions_are_read_without_regard_to_case() -> None:
    body = load(OPSGENIE)
    body["action"] = "create"
    assert len(parse(body)) == 1


def test_tags_and_details_become_labels() -> None:
    body = load(OPSGENIE)
    body["alert"].update(
        tags=["service:checkout", "host:web-1", "OverwriteQuietHours"],
        details={"region": "eu-west-1", "service": "from-details", "count": 3},
        entity="checkout-api",
    )
    (event,) = parse(body)
    assert event.labels == {"region": "eu-west-1", "service": "checkout", "count": "3",
                            "host": "web-1", "OverwriteQuietHours": ""}  # fmt: skip
    assert event.resource == "checkout-api"  # the entity, Opsgenie's own field
    assert event.host == "web-1"


def test_without_alias_the_alert_id_identifies_it() -> None:
    body = load(OPSGENIE)
    del body["alert"]["alias"]
    (event,) = parse(body)
    assert event.fingerprint == "opsgenie:7ec3…"


def test_without_any_key_the_default_fingerprint_is_used() -> None:
    (a,) = parse({"action": "Create", "alert": {"message": "x"}})
    (b,) = parse({"action": "Create", "alert": {"message": "y"}})
    assert a.fingerprint and b.fingerprint and a.fingerprint != b.fingerprint


@pytest.mark.parametrize(
    ("body", "message"),
    [("Create", "body: expected an object, got string"),
     ({"alert": {}}, "action: missing"),
     ({"action": "Create"}, "alert: missing"),
     ({"action": "AddNote", "alert": []}, "alert: expected an object, got list"),
     ({"action": {"name": "Create"}, "alert": {}}, "action: expected text, got object"),
     ({"action": "Create", "alert": {"tags": {"a": 1}}}, "alert.tags: expected a list, got object"),
     ({"action": "Create", "alert": {"tags": [None]}}, "alert.tags[0]: expected text, got null"),
     ({"action": "Create", "alert": {"details": ["x"]}},
      "alert.details: expected an object, got list"),
     ({"action": "Create", "alert": {"alias": False}}, "alert.alias: expected text, got boolean")],
)  # fmt: skip
def test_bad_shapes_name_where(body: Any, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message
