"""The Alertmanager-shaped alert group that Alertmanager and Grafana both send, and
Alertmanager's label fingerprint: shared by the two mappers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsmedic.model import Event, Status
from opsmedic.sources.webhooks.shape import (
    as_list,
    as_object,
    child,
    host_of,
    iso_time,
    opt_object,
    opt_text,
    required,
    resource_of,
    severity_of,
    status_from,
    text_labels,
)

STATUSES = {"firing": Status.FIRING, "resolved": Status.RESOLVED}
# Group members left out of each alert's payload: the alerts themselves, and summaries that
# repeat what every alert carries (Grafana's `message` renders all alerts of the group).
_NOT_PER_ALERT = frozenset({"alerts", "commonLabels", "commonAnnotations", "message"})

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def _utf8(text: str) -> bytes:
    # surrogatepass: JSON may carry lone surrogates; they must not crash identity.
    return text.encode("utf-8", "surrogatepass")


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (prometheus/common model/signature.go).

    FNV-1a 64 over the labels sorted by name, each `name 0xFF value 0xFF`, as 16 hex digits.
    """
    h = _FNV_OFFSET
    for name in sorted(labels, key=_utf8):
        for byte in b"%b\xff%b\xff" % (_utf8(name), _utf8(labels[name])):
            h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


def parse_group(
    source: str, data: Any, value_of: Callable[[dict[str, Any], str], float | None] | None = None
) -> list[Event]:
    """Events of an Alertmanager-shaped group (Alertmanager itself, Grafana's unified alerting).

    `value_of(alert, where)` reads an alert's value where the sender has one.
    """
    body = as_object(data, "")
    alerts = as_list(required(body, "alerts", ""), "alerts")
    group_status = opt_text(body, "status", "")
    group = {k: v for k, v in body.items() if k not in _NOT_PER_ALERT}
    events = []
    for i, raw in enumerate(alerts):
        where = child("alerts", i)
        alert = as_object(raw, where)
        labels = text_labels(opt_object(alert, "labels", where), child(where, "labels"))
        word = opt_text(alert, "status", where)
        # An alert without a status of its own takes the group's, and errors name that one.
        from_group = not word and bool(group_status)
        status = status_from(
            group_status if from_group else word,
            STATUSES,
            child("" if from_group else where, "status"),
        )
        resolved = status is Status.RESOLVED
        events.append(
            Event(
                source=source,
                kind=labels.get("alertname", ""),
                resource=resource_of(labels),
                host=host_of(labels),
                labels=labels,
                value=value_of(alert, where) if value_of else None,
                severity=severity_of(labels.get("severity", "")),
                status=status,
                # A resolved alert keeps its label set, so it meets its firing one here.
                fingerprint=opt_text(alert, "fingerprint", where) or fingerprint(labels),
                time=iso_time(alert.get("endsAt" if resolved else "startsAt")),
                payload={**group, **alert},
            )
        )
    return events
