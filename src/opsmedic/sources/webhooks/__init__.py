"""Alert webhooks of the monitoring tools people run, mapped to Events (pure: no I/O, no clock).

A parser takes a webhook's decoded JSON body, whatever its type, and returns the Events it
holds: one per alert of an Alertmanager or Grafana group, one for the other tools, none for
a notification that changes nothing about the problem (an acknowledgement, a note). A body
it cannot map raises WebhookError naming the place (`alerts[3].labels: expected an object,
got list`); no other exception escapes. Unknown fields are kept in each Event's payload.
Each module exports its WebhookSpec as `WEBHOOK`; the runtime registers BUILTIN_WEBHOOKS.
docs/webhooks.md shows how to point each tool here and how its fields become Event fields.
"""

from __future__ import annotations

from typing import Any

from opsmedic.plugins import WebhookSpec
from opsmedic.sources.webhooks import alertmanager, datadog, dynatrace, grafana, opsgenie, pagerduty

__all__ = ["BUILTIN_WEBHOOKS"]

# The order of the API's routes and of `replay --format`'s choices.
BUILTIN_WEBHOOKS: tuple[WebhookSpec[Any], ...] = (
    alertmanager.WEBHOOK,
    grafana.WEBHOOK,
    datadog.WEBHOOK,
    opsgenie.WEBHOOK,
    pagerduty.WEBHOOK,
    dynatrace.WEBHOOK,
)
