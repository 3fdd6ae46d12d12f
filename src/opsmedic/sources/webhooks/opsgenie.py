"""Opsgenie's outgoing webhook integration: an alert's Create and Close (or Delete) actions."""

from __future__ import annotations

from typing import Any

from opsmedic.errors import WebhookError
from opsmedic.model import Event, Status
from opsmedic.plugins import WebhookSpec
from opsmedic.sources.webhooks.shape import (
    as_object,
    epoch_time,
    host_of,
    need_text,
    opt_object,
    opt_text,
    parse_tags,
    required,
    resource_of,
    severity_of,
    text_labels,
)

# Only these change whether the problem exists. Acknowledge, AddNote, Assign, Escalate… do not,
# and would otherwise echo opsmedic's own notes (the annotate action) back as firing events.
ACTIONS = {"create": Status.FIRING, "close": Status.RESOLVED, "delete": Status.RESOLVED}


def parse(data: Any) -> list[Event]:
    body = as_object(data, "")
    status = ACTIONS.get(need_text(body, "action", "").lower())
    alert = as_object(required(body, "alert", ""), "alert")
    if status is None:
        return []
    details = text_labels(opt_object(alert, "details", "alert"), "alert.details")
    labels = {**details, **parse_tags(alert.get("tags"), "alert.tags")}
    key = opt_text(alert, "alias", "alert") or opt_text(alert, "alertId", "alert")
    firing = status is Status.FIRING
    return [
        Event(
            source="opsgenie",
            kind=opt_text(alert, "message", "alert"),
            resource=opt_text(alert, "entity", "alert") or resource_of(labels),
            host=host_of(labels),
            labels=labels,
            severity=severity_of(_priority(alert)),
            status=status,
            fingerprint=f"opsgenie:{key}" if key else "",
            # createdAt (ms) dates the Create; the Close is the last update (updatedAt, ns).
            time=epoch_time(alert.get("createdAt"), 1e3)
            if firing
            else epoch_time(alert.get("updatedAt"), 1e9),
            payload=body,
        )
    ]


def _priority(alert: dict[str, Any]) -> str:
    """P1…P5 as Opsgenie documents them, also when sent as the bare number 1…5 (or 3.0)."""
    value = alert.get("priority")
    # Some senders (integrations, API clients, encoders that write 3.0) send a number.
    # Opsgenie has no priority outside P1-P5, so another number is a broken body, not "info".
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value not in (1, 2, 3, 4, 5):  # 3.0 == 3; the text of a huge int cannot be made
            raise WebhookError("alert.priority", "a number other than Opsgenie's 1-5 (P1-P5)")
        return f"P{int(value)}"
    text = opt_text(alert, "priority", "alert")
    return f"P{text}" if text in ("1", "2", "3", "4", "5") else text


WEBHOOK: WebhookSpec[Any] = WebhookSpec("opsgenie", parse, summary="Opsgenie's outgoing webhook")
