"""PagerDuty: webhooks v3 incident events, and Events API v2 bodies (trigger and resolve)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import Field

from opsmedic.config.types import Secret, Strict
from opsmedic.errors import WebhookError, WebhookRefused
from opsmedic.model import Event, Status
from opsmedic.plugins import SettingsSpec, WebhookSpec
from opsmedic.sources.webhooks.shape import (
    as_object,
    child,
    host_of,
    iso_time,
    need_text,
    opt_object,
    opt_text,
    required,
    resource_of,
    severity_of,
    status_from,
    text_labels,
)
from opsmedic.sources.webhooks.signature import verify_pagerduty_signature

# Only the types that open or close the problem; acknowledged, annotated, escalated… change
# who works on it, not whether it exists (and annotated would echo opsmedic's own notes).
EVENT_TYPES = {
    "incident.triggered": Status.FIRING,
    "incident.reopened": Status.FIRING,
    "incident.resolved": Status.RESOLVED,
}
ACTIONS = {"trigger": Status.FIRING, "resolve": Status.RESOLVED, "acknowledge": None}


def parse(data: Any) -> list[Event]:
    body = as_object(data, "")
    if "event" in body:
        return _v3(body)
    if "event_action" in body:
        return _v2(body)
    raise WebhookError(
        "", "expected a webhook v3 body (event) or an Events API v2 body (event_action)"
    )


def _v3(body: dict[str, Any]) -> list[Event]:
    event = as_object(body["event"], "event")
    status = EVENT_TYPES.get(need_text(event, "event_type", "event"))
    if status is None:
        return []
    data = as_object(required(event, "data", "event"), "event.data")
    where = "event.data"
    service = opt_text(opt_object(data, "service", where), "summary", child(where, "service"))
    priority = opt_text(opt_object(data, "priority", where), "summary", child(where, "priority"))
    urgency = opt_text(data, "urgency", where)
    labels = {k: v for k, v in (("service", service), ("priority", priority),
              ("urgency", urgency)) if v}  # fmt: skip
    # incident_key is the dedup_key of the Events v2 alert behind it, when there is one.
    key = opt_text(data, "incident_key", where) or opt_text(data, "id", where)
    return [
        Event(
            source="pagerduty",
            kind=opt_text(data, "title", where),
            resource=service,
            labels=labels,
            severity=severity_of(priority, urgency),
            status=status,
            fingerprint=f"pagerduty:{key}" if key else "",
            time=iso_time(event.get("occurred_at")),
            payload=body,
        )
    ]


def _v2(body: dict[str, Any]) -> list[Event]:
    status = status_from(need_text(body, "event_action", ""), ACTIONS, "event_action")
    if status is None:  # acknowledge: someone works on it, the problem is unchanged
        return []
    dedup_key = opt_text(body, "dedup_key", "")
    payload = opt_object(body, "payload", "")
    summary = opt_text(payload, "summary", "payload")
    if status is Status.RESOLVED and not dedup_key:
        raise WebhookError("dedup_key", "missing (a resolve names the alert it resolves)")
    if status is Status.FIRING and not summary:
        raise WebhookError("payload.summary", "missing")
    details = payload.get("custom_details")
    # custom_details may be any JSON; an object becomes labels, anything else stays in payload.
    labels = text_labels(details, "payload.custom_details") if isinstance(details, dict) else {}
    for key in ("group", "class"):
        if value := opt_text(payload, key, "payload"):
            labels.setdefault(key, value)
    return [
        Event(
            source="pagerduty",
            kind=summary,
            resource=opt_text(payload, "component", "payload") or resource_of(labels),
            host=opt_text(payload, "source", "payload") or host_of(labels),
            labels=labels,
            severity=severity_of(opt_text(payload, "severity", "payload")),
            status=status,
            fingerprint=f"pagerduty:{dedup_key}" if dedup_key else "",
            time=iso_time(payload.get("timestamp")),
            # The routing key lets anyone page this service: it is a secret, not data.
            payload={k: v for k, v in body.items() if k != "routing_key"},
        )
    ]


class Settings(Strict):
    """The `webhooks:` section of opsmedic.yaml: PagerDuty's signing secrets."""

    pagerduty_signing_secrets: list[Secret] = Field(
        default_factory=list,
        description="PagerDuty v3 webhook secrets; with any set, X-PagerDuty-Signature is "
        "required and verified (several during a rotation)",
    )

    @cached_property
    def signing_keys(self) -> list[bytes]:
        """The secrets as HMAC keys, read once: the API computes this at start (see
        api/app.py), so a secret file that cannot be read stops the start, not a request."""
        return [secret.reveal().encode() for secret in self.pagerduty_signing_secrets]


# The `webhooks:` section of opsmedic.yaml.
SETTINGS = SettingsSpec("webhooks", Settings)


def verify(body: bytes, headers: Mapping[str, str], settings: Settings) -> None:
    """With signing secrets configured, a request must carry a signature of its raw body."""
    keys = settings.signing_keys
    if keys and not verify_pagerduty_signature(body, headers.get("x-pagerduty-signature"), keys):
        raise WebhookRefused("X-PagerDuty-Signature is missing or does not match")


WEBHOOK = WebhookSpec(
    "pagerduty",
    parse,
    verify=verify,
    settings=SETTINGS,
    summary="PagerDuty webhooks v3 and Events API v2 bodies, signatures verified",
)
