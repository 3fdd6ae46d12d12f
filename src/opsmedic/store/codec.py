"""Row <-> dataclass conversion for events and runs, and the JSON encoding of JSON columns."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import orjson
from sqlalchemy import RowMapping

from opsmedic.model import Event, Run, RunState, Status, StepRecord

_STEP_FIELDS = tuple(f.name for f in fields(StepRecord))
# One encoder, built once: json.dumps() with options builds a new one per call (hot path).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps_json(value: Any) -> str:
    """Compact JSON that PostgreSQL accepts too: ASCII escapes keep NUL and lone surrogates
    exact, and NaN/Infinity (not JSON) become the strings "NaN", "Infinity", "-Infinity".

    orjson first (several times faster: event payloads are most of the store's CPU). It
    refuses lone surrogates and writes NaN as null, so any output with a `null` in it, or a
    refusal, is redone by the standard encoder: the stored JSON means exactly the same.
    """
    if value is None:
        return "null"
    try:
        fast = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        fast = b"null"
    if b"null" not in fast:
        return fast.decode()
    try:
        return _ENCODER.encode(value)
    except ValueError:
        return _ENCODER.encode(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def text(value: str) -> str:
    """A string a text column can hold on every backend: NUL bytes (refused by PostgreSQL)
    and lone surrogates (not encodable as UTF-8) become U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def event_row(e: Event) -> dict[str, Any]:
    return {
        "id": text(e.id),
        "source": text(e.source),
        "kind": text(e.kind),
        "resource": text(e.resource),
        "host": text(e.host),
        "labels": e.labels,
        "value": e.value,
        "severity": text(e.severity),
        "status": str(e.status),
        "fingerprint": text(e.fingerprint),
        "time": e.time,
        "payload": e.payload,
        "incident_id": e.incident_id or None,
    }


def event_from_row(row: RowMapping) -> Event:
    return Event(
        id=row["id"],
        source=row["source"],
        kind=row["kind"],
        resource=row["resource"],
        host=row["host"],
        labels=row["labels"],
        value=row["value"],
        severity=row["severity"],
        status=Status(row["status"]),
        fingerprint=row["fingerprint"],
        time=row["time"],
        payload=row["payload"],
        incident_id=row["incident_id"] or "",
    )


def step_dict(step: StepRecord) -> dict[str, Any]:
    d = {name: getattr(step, name) for name in _STEP_FIELDS}
    d["state"] = str(step.state)
    return d


def step_from_dict(d: Mapping[str, Any]) -> StepRecord:
    # Keys this version does not know (written by a newer one) are ignored, not fatal.
    known = {k: v for k, v in d.items() if k in _STEP_FIELDS}
    known["state"] = RunState(known.get("state", RunState.PLANNED))
    return StepRecord(**known)


def run_row(r: Run) -> dict[str, Any]:
    return {
        "id": text(r.id),
        "rule": text(r.rule),
        "event_id": text(r.event_id),
        "target": text(r.target),
        "fingerprint": text(r.fingerprint),
        "actions": r.actions,
        "queue": text(r.queue),
        "dry_run": r.dry_run,
        "state": str(r.state),
        "message": text(r.message),
        "steps": [step_dict(s) for s in r.steps],
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "incident_id": r.incident_id or None,
        "rerun_of": r.rerun_of or None,
    }


def run_from_row(row: RowMapping) -> Run:
    return Run(
        id=row["id"],
        rule=row["rule"],
        event_id=row["event_id"],
        target=row["target"],
        fingerprint=row["fingerprint"],
        actions=row["actions"],
        queue=row["queue"],
        dry_run=row["dry_run"],
        state=RunState(row["state"]),
        message=row["message"],
        steps=[step_from_dict(d) for d in row["steps"]],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        incident_id=row["incident_id"] or "",
        rerun_of=row["rerun_of"] or "",
    )
