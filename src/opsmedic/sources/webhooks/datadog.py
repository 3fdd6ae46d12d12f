"""Datadog's webhook integration: the default payload or the one docs/webhooks.md recommends."""

from __future__ import annotations

import re
from typing import Any

from opsmedic.errors import WebhookError
from opsmedic.model import Event, Status
from opsmedic.plugins import WebhookSpec
from opsmedic.sources.webhooks.shape import (
    as_list,
    as_object,
    child,
    epoch_time,
    host_of,
    opt_text,
    parse_tags,
    resource_of,
    severity_of,
    type_name,
)

# $ALERT_TRANSITION words, also the bracketed prefix of $EVENT_TITLE:
# "[P1] [Triggered on {host:web-1}] Disk full", "[Recovered] Disk full", "[Re-No Data] ...".
_TRANSITION = re.compile(r"(?:re-)?(?:triggered|recovered|warn|no data)\b|renotify\b", re.I)
_PRIORITY = re.compile(r"p[1-5]", re.I)
_BRACKETED = re.compile(r"\s*\[([^\]]*)\]")
_IDENTITY = ("title", "alert_title", "alert_id", "monitor_id", "alert_cycle_key")
_TEXT_FIELDS = (*_IDENTITY, "alert_transition", "alert_type", "alert_priority", "alert_scope",
                "hostname", "date", "last_updated")  # fmt: skip


def parse(data: Any) -> list[Event]:
    body = as_object(data, "")
    text = {key: opt_text(body, key, "") for key in _TEXT_FIELDS}
    if not any(text[key] for key in _IDENTITY):
        raise WebhookError("", f"not a Datadog alert: none of {', '.join(_IDENTITY)}")
    title, transition = _split_title(text["title"])
    transition = text["alert_transition"] or transition
    labels = parse_tags(body.get("tags"), "tags")
    host = text["hostname"] or host_of(labels)
    return [
        Event(
            source="datadog",
            kind=_split_title(text["alert_title"])[0] or title,
            resource=resource_of(labels),
            host=host,
            labels=labels,
            severity=_severity(text["alert_priority"], text["alert_type"], transition),
            status=_status(transition, text["alert_type"]),
            fingerprint=_fingerprint(
                text["alert_id"] or text["monitor_id"],
                _scope(text["alert_scope"], body.get("scopes")),
                text["alert_cycle_key"],
            ),
            time=epoch_time(text["date"] or text["last_updated"], 1e3),
            payload=body,
        )
    ]


def _split_title(title: str) -> tuple[str, str]:
    """The title without Datadog's [P1] and [Triggered …] prefixes, and the transition word."""
    transition = ""
    pos = 0
    while match := _BRACKETED.match(title, pos):
        inside = match[1].strip()
        word = _TRANSITION.match(inside)
        if word:
            transition = transition or word[0]
        elif not _PRIORITY.fullmatch(inside):
            break  # the user's own bracket, part of the name
        pos = match.end()
    return title[pos:].strip(), transition


def _status(transition: str, alert_type: str) -> Status:
    if transition:
        return Status.RESOLVED if "recovered" in transition.lower() else Status.FIRING
    # Without a transition, $ALERT_TYPE "success" is the only word that says recovered.
    return Status.RESOLVED if alert_type.lower() == "success" else Status.FIRING


def _severity(priority: str, alert_type: str, transition: str) -> str:
    return severity_of(priority, alert_type, default=_transition_severity(transition))


def _transition_severity(transition: str) -> str:
    lowered = transition.lower()
    if not lowered or "recovered" in lowered:
        return "info"
    return "warning" if "warn" in lowered or "no data" in lowered else "error"


def _fingerprint(monitor: str, scope: str, cycle_key: str) -> str:
    """The monitor and its group (scope) identify the alert, never the title: Datadog shortens
    a recovery's title, and the same alert must meet its trigger, and fire again after a
    recovery as the same alert (a flap, not a new incident). $ALERT_CYCLE_KEY (one
    trigger-to-recovery cycle) serves when the body names no monitor; with neither, as in
    Datadog's default payload, the event's own fingerprint is computed (docs/webhooks.md)."""
    if monitor:
        return f"datadog:{monitor}/{scope}" if scope else f"datadog:{monitor}"
    if cycle_key:
        return f"datadog:{cycle_key}"
    return ""


def _scope(alert_scope: str, scopes: Any) -> str:
    """$ALERT_SCOPE ("az:us-east-1a, role:db"), or a list of scope tags (`scopes`), as one
    text that does not depend on order or spacing."""
    tags = alert_scope.split(",")
    if scopes is not None and not alert_scope:
        items = [scopes] if isinstance(scopes, str) else as_list(scopes, "scopes")
        tags = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise WebhookError(child("scopes", i), f"expected text, got {type_name(item)}")
            tags += item.split(",")
    return ",".join(sorted({t.strip() for t in tags if t.strip()}))


WEBHOOK: WebhookSpec[Any] = WebhookSpec("datadog", parse, summary="Datadog's webhook integration")
