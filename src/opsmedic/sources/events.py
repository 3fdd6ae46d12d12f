"""Events from JSON: generic events (API bodies, replay lines), replay files of webhook bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsmedic.config.types import PlainText
from opsmedic.errors import Problem, WebhookError
from opsmedic.model import FIELD_MAX, Event, Status
from opsmedic.plugins import WebhookSpec


class EventIn(BaseModel):
    """One generic event; unknown top-level fields are kept in `payload`, never dropped."""

    model_config = ConfigDict(extra="allow")

    # Identifiers are one line of printable text (PlainText); kind, resource and labels are
    # free text (an alert's title, a path): stored with NUL made U+FFFD (store/codec.py).
    source: PlainText = Field(min_length=1, max_length=FIELD_MAX["source"])
    kind: str = Field("", max_length=FIELD_MAX["kind"])
    resource: str = Field("", max_length=FIELD_MAX["resource"])
    host: PlainText = Field("", max_length=FIELD_MAX["host"])
    labels: dict[str, str] = Field(default_factory=dict)
    value: float | str | None = None
    severity: PlainText = Field("info", max_length=FIELD_MAX["severity"])
    status: Status = Status.FIRING
    fingerprint: PlainText = Field("", max_length=FIELD_MAX["fingerprint"])
    # Epoch seconds up to the year 9999: later ones cannot be shown as dates anywhere.
    time: float | None = Field(None, ge=0, le=253_402_300_799)
    payload: dict[str, Any] = Field(default_factory=dict)
    id: str = Field("", max_length=FIELD_MAX["id"], pattern=r"^[A-Za-z0-9_.:-]*$")
    # Read and dropped: the engine groups events into incidents itself. Known here so that an
    # event exported by `opsmedic events --jsonl` reads back as it was, payload unchanged.
    incident_id: str | None = Field(None, max_length=64)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # Labels are text, as in Prometheus; numbers and booleans arrive from JSON all the same.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise ValueError(f"not a time: {value!r} (epoch seconds or ISO 8601)") from None
        return value

    def to_event(self) -> Event:
        payload = {**self.payload, **self.model_extra} if self.model_extra else self.payload
        return Event(
            source=self.source, kind=self.kind, resource=self.resource, host=self.host,
            labels=self.labels, value=self.value, severity=self.severity, status=self.status,
            fingerprint=self.fingerprint, time=self.time or 0.0, payload=payload, id=self.id,
        )  # fmt: skip


def parse_event(data: Any) -> Event:
    """A validated Event from decoded JSON; raises ValueError with a one-line reason."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is a JSON object, got {type(data).__name__}")
    try:
        return EventIn.model_validate(data).to_event()
    except ValidationError as exc:
        raise ValueError(_one_line(exc)) from None


def parse_event_json(text: bytes | str) -> Event:
    """A validated Event from JSON text, parsed and validated in one pass by pydantic-core."""
    try:
        return EventIn.model_validate_json(text).to_event()
    except ValidationError as exc:
        raise ValueError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


# An event with the number of the line it came from, so a later check can name the line too.
Numbered = tuple[int, Event]


def read_jsonl(path: Path) -> Iterator[Numbered | Problem]:
    """Events from a JSON-lines file; a bad line yields a located Problem and reading goes on."""
    for n, line in _lines(path):
        try:
            yield n, parse_event_json(line)
        except ValueError as exc:
            yield Problem(str(path), n, 1, "", f"skipped: {exc}")


def read_webhook_lines(path: Path, webhook: WebhookSpec[Any]) -> Iterator[Numbered | Problem]:
    """Events from a file of raw webhook bodies (one JSON body per line), mapped by the
    webhook's parser as the API maps them; a bad line yields a located Problem and reading
    goes on."""
    source = webhook.name
    for n, line in _lines(path):
        try:
            # orjson, as the API decodes: strict JSON (no NaN, UTF-8 only), the same verdicts.
            events = webhook.parse(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            yield Problem(str(path), n, 1, "", f"skipped: not JSON: {exc.msg}")
        except WebhookError as exc:
            yield Problem(str(path), n, 1, "", f"skipped: {source} body: {exc}")
        else:
            yield from ((n, event) for event in events)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of a file, without blank lines and `#` comments."""
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            line = raw.strip()
            if line and not line.startswith(b"#"):
                yield n, line
