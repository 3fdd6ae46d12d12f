"""The public JSON of events, runs, incidents and tokens: one shape for the API and the CLI.

docs/api.md documents these shapes; later changes may add fields, never rename or drop one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from opsmedic.model import Event, Incident, Run, RunState, TimelineEntry, TokenRecord
from opsmedic.store.codec import run_row, valid_utf8
from opsmedic.store.incident_rows import AlertRow

JSON = dict[str, Any]
_FAILED = (RunState.FAILED, RunState.TIMED_OUT)


def event_json(event: Event) -> JSON:
    # "" means "no incident" inside the engine; the public shape says so with null, as runs do.
    # Labels and payload are kept exactly as sent (a lone surrogate included, JSON's escapes
    # can spell one); what is served is valid UTF-8 that every strict decoder reads.
    data = {**event.as_dict(), "incident_id": event.incident_id or None}
    try:
        served: JSON = valid_utf8(data)
    except RecursionError:  # deeper than any JSON encoder writes: the caller's encoder says so
        return data
    return served


def deciding_step(run: Run) -> int | None:
    """The index in `run.steps` of the step that decided the outcome: the first failed main
    step, else the last main step (on_failure steps only react, they never decide)."""
    main = [i for i, step in enumerate(run.steps) if not step.on_failure]
    failed = next((i for i in main if run.steps[i].state in _FAILED), None)
    if failed is not None:
        return failed
    return main[-1] if main else None


def run_json(run: Run) -> JSON:
    return {**run_row(run), "deciding_step": deciding_step(run)}


def incident_json(incident: Incident) -> JSON:
    data = dataclasses.asdict(incident)
    del data["alerts"]  # the detail lists them with their times; the summary counts events
    data["status"] = str(incident.status)
    return data


def incident_detail_json(
    incident: Incident, alerts: Sequence[AlertRow], timeline: Sequence[TimelineEntry]
) -> JSON:
    return {
        **incident_json(incident),
        "alerts": [dataclasses.asdict(a) for a in alerts],
        "timeline": [
            {k: v for k, v in dataclasses.asdict(t).items() if k != "incident_id"} for t in timeline
        ],
    }


def token_json(token: TokenRecord) -> JSON:
    return {**dataclasses.asdict(token), "scopes": list(token.scopes)}
