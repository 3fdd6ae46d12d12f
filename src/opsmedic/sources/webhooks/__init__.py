"""Alert webhooks of the monitoring tools people run, mapped to Events (pure: no I/O, no clock).

A parser takes a webhook's decoded JSON body, whatever its type, and returns the Events it
holds: one per alert of an Alertmanager or Grafana group, one for the other tools, none for
a notification that changes nothing about the problem (an acknowledgement, a note). A body
it cannot map raises WebhookError naming the place (`alerts[3].labels: expected an object,
got list`); no other exception escapes. Unknown fields are kept in each Event's payload.
docs/webhooks.md shows how to point each tool here and how its fields become Event fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from opsmedic.model import Event
from opsmedic.sources.webhooks import alertmanager, datadog, dynatrace, grafana, opsgenie, pagerduty
from opsmedic.sources.webhooks.shape import WebhookError

__all__ = ["PARSERS", "Parser", "WebhookError", "parse_webhook"]

Parser = Callable[[Any], list[Event]]

PARSERS: dict[str, Parser] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "datadog": datadog.parse,
    "opsgenie": opsgenie.parse,
    "pagerduty": pagerduty.parse,
    "dynatrace": dynatrace.parse,
}


def parse_webhook(source: str, data: Any) -> list[Event]:
    """The Events of one webhook body from `source`; an unknown source is a WebhookError too."""
    parser = PARSERS.get(source)
    if parser is None:
        close = difflib.get_close_matches(source, PARSERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise WebhookError("source", f"unknown {source!r}; {hint}known: {', '.join(PARSERS)}")
    return parser(data)
