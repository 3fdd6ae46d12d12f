"""Row <-> dataclass conversion for events and runs, and the JSON encoding of JSON columns."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import orjson
from sqlalchemy import RowMapping

from opsmedic.errors import StoreRefused
from opsmedic.model import FIELD_MAX, INDEXED_FIELDS, Event, Run, RunState, Status, StepRecord
from opsmedic.utf8 import escape_surrogates, text, valid_utf8

_STEP_FIELDS = tuple(f.name for f in fields(StepRecord))
# One encoder, built once: json.dumps() with options builds a new one per call (hot path).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class Encoded(str):
    """JSON text encoded before the commit (see EncodedEvent): written as it is."""

    __slots__ = ()


@dataclass(slots=True)
class EncodedEvent:
    """An event with its JSON columns encoded when it was submitted, so that a value that
    cannot be encoded fails that submission alone, never the commit it would have shared."""

    event: Event
    labels: Encoded
    value: Encoded
    payload: Encoded


def encode_event(e: Event) -> EncodedEvent:
    """Raises StoreRefused naming the field when a JSON column cannot be encoded or is too long."""
    # An indexed field past FIELD_MAX could not be indexed by PostgreSQL, and would fail the
    # commit this event shares with other submissions.
    for name in INDEXED_FIELDS:
        length, most = len(getattr(e, name)), FIELD_MAX[name]
        if length > most:
            raise StoreRefused(f"{name}: {length} characters; at most {most}")
    columns = {"labels": e.labels, "value": e.value, "payload": e.payload}
    encoded = {}
    for name, value in columns.items():
        try:
            encoded[name] = Encoded(dumps_json(value))
        except (ValueError, TypeError, RecursionError) as exc:
            # RecursionError: the standard encoder recurses per level (orjson stops at 255).
            raise StoreRefused(f"{name}: cannot be stored as JSON ({type(exc).__name__})") from exc
    return EncodedEvent(e, **encoded)


def dumps_json(value: Any) -> str:
    """Compact JSON that PostgreSQL accepts too: ASCII escapes keep NUL and lone surrogates
    exact, and NaN/Infinity (not JSON) become the strings "NaN", "Infinity", "-Infinity".

    orjson first (several times faster: event payloads are most of the store's CPU). It
    refuses lone surrogates and writes NaN as null, so any output with a `null` in it, or a
    refusal, is redone by the standard encoder: the stored JSON means exactly the same.
    """
    if value is None:
        return "null"
    if isinstance(value, Encoded):
        return str(value)  # a plain str: drivers bind exact types
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


def event_row(item: Event | EncodedEvent) -> dict[str, Any]:
    if isinstance(item, EncodedEvent):
        return {**event_row(item.event), "labels": item.labels, "value": item.value,
                "payload": item.payload}  # fmt: skip
    e = item
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
        # A run's text is the world's (file names, output): a lone surrogate keeps its byte.
        "message": text(escape_surrogates(r.message)),
        "steps": [step_dict(s) for s in r.steps],
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "incident_id": r.incident_id or None,
        "rerun_of": r.rerun_of or None,
        "started_by": text(r.started_by),
        "forced": r.forced,
        # Set by whoever moves it to `running` (store/run_owner.py stamp), never by the run.
        "owner": None,
        "lease_until": None,
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
        # Rows written before outcomes were made valid UTF-8 (engine/executor.py) may hold
        # surrogates; made readable here, so that no reader fails on an old run.
        message=escape_surrogates(row["message"]),
        steps=[step_from_dict(valid_utf8(d)) for d in row["steps"]],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        incident_id=row["incident_id"] or "",
        rerun_of=row["rerun_of"] or "",
        started_by=row["started_by"],
        forced=row["forced"],
    )
