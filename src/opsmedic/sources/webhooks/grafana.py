"""Grafana's webhook contact point: unified alerting (Alertmanager-shaped) and legacy alerts."""

from __future__ import annotations

import math
from typing import Any

from opsmedic.model import Event, Status
from opsmedic.plugins import WebhookSpec
from opsmedic.sources.webhooks.alert_group import fingerprint, parse_group
from opsmedic.sources.webhooks.shape import (
    as_list,
    as_object,
    child,
    host_of,
    need_text,
    opt_object,
    opt_text,
    resource_of,
    severity_of,
    status_from,
    text_labels,
)

# Legacy `no_data` is a problem still open (Grafana's default maps it to alerting).
LEGACY_STATES = {"alerting": Status.FIRING, "no_data": Status.FIRING, "ok": Status.RESOLVED}


def parse(data: Any) -> list[Event]:
    body = as_object(data, "")
    if "evalMatches" in body:  # only legacy alerting sends it
        return [_legacy(body)]
    return parse_group("grafana", body, _value)


def _value(alert: dict[str, Any], where: str) -> float | None:
    """The alert's value when its query has one reading (`values: {"B": 97.2}`), else None."""
    values = opt_object(alert, "values", where)
    return _single_number([values[k] for k in values])


def _single_number(readings: list[Any]) -> float | None:
    if len(readings) != 1:
        return None
    (value,) = readings
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float is no reading either
            return None
        return number if math.isfinite(number) else None
    return None


def _legacy(body: dict[str, Any]) -> Event:
    status = status_from(need_text(body, "state", ""), LEGACY_STATES, "state")
    matches = as_list(body["evalMatches"], "evalMatches")
    labels = text_labels(opt_object(body, "tags", ""), "tags")
    name = opt_text(body, "ruleName", "") or opt_text(body, "title", "")
    rule_id = opt_text(body, "ruleId", "")
    readings = [as_object(m, child("evalMatches", i)).get("value") for i, m in enumerate(matches)]
    return Event(
        source="grafana",
        kind=name,
        resource=resource_of(labels),
        host=host_of(labels),
        labels=labels,
        value=_single_number(readings),
        severity=severity_of(labels.get("severity", "")),
        status=status,
        # The rule is the identity; its tags join only when there is no rule id.
        fingerprint=f"grafana:{rule_id}" if rule_id else fingerprint({**labels, "alertname": name}),
        payload=body,
    )


WEBHOOK: WebhookSpec[Any] = WebhookSpec("grafana", parse, summary="Grafana's webhook contact point")
