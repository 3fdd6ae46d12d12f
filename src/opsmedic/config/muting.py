"""The `maintenance:` and `inhibit:` sections: windows that act as silences, and Alertmanager's
inhibit rules (docs/silences.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from opsmedic.config.matchers import FIELDS, parse_matcher, parse_matchers, selective
from opsmedic.config.types import PositiveDuration, Strict

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))  # fmt: skip
_CRON_PART = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")
# How long a firing source alert holds without a repeat: Alertmanager's resolve_timeout
# (default 5m). Also what `depends_on`'s rules use.
RESOLVE_TIMEOUT = 300.0


def _matcher(text: str) -> str:
    parse_matcher(text)
    return text


MatcherText = Annotated[str, AfterValidator(_matcher)]


class Cron:
    """A five-field cron schedule (minute hour day-of-month month day-of-week) with `*`, `a`,
    `a-b`, lists and `/step`; as in cron, when both day fields are restricted either matches."""

    def __init__(self, text: str) -> None:
        parts = text.split()
        if len(parts) != len(_CRON_FIELDS):
            raise ValueError(f"a schedule has 5 fields (minute hour day month weekday): {text!r}")
        self.text = text
        self._sets = [_cron_field(p, *spec) for p, spec in zip(parts, _CRON_FIELDS, strict=True)]
        self._sets[4] = {d % 7 for d in self._sets[4]}  # 7 is Sunday too
        self._any_dom, self._any_dow = parts[2] == "*", parts[4] == "*"

    def matches(self, at: datetime) -> bool:
        """Whether the schedule fires at `at`'s minute (local time of `at`)."""
        minute, hour, dom, month, dow = self._sets
        if at.minute not in minute or at.hour not in hour or at.month not in month:
            return False
        on_dom, on_dow = at.day in dom, (at.isoweekday() % 7) in dow
        if self._any_dom or self._any_dow:
            return on_dom and on_dow
        return on_dom or on_dow


def _cron_field(text: str, name: str, low: int, high: int) -> set[int]:
    found: set[int] = set()
    for part in text.split(","):
        m = _CRON_PART.fullmatch(part)
        if m is None:
            raise ValueError(f"{name} {part!r}: use *, N, N-M, a list, or /STEP")
        span, step = m.group(1), int(m.group(2) or 1)
        first, _, last = span.partition("-")
        a, b = (low, high) if span == "*" else (int(first), int(last or first))
        if not (low <= a <= b <= high) or step < 1:
            raise ValueError(f"{name} {part!r}: out of range {low}-{high}")
        found.update(range(a, b + 1, step))
    return found


class MaintenanceWindow(Strict):
    """While active, the matching events are held as by a silence. What: `matchers` and/or
    `hosts` and/or `services` (all that are given must match). When: `start` and `end`, or a
    cron `schedule` with a `duration`, in `timezone`."""

    name: str = Field(min_length=1)
    matchers: list[MatcherText] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list, description="any of these hosts")
    services: list[str] = Field(default_factory=list, description="labels.service, any of these")
    start: datetime | None = None
    end: datetime | None = None
    schedule: str | None = Field(None, description="cron: minute hour day month weekday")
    duration: PositiveDuration | None = Field(None, description="how long from each start")
    timezone: str = Field("UTC", description="of the schedule, and of dates written without one")
    comment: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use e.g. UTC, Europe/Paris)") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is not None:
            Cron(value)
        return value

    @model_validator(mode="after")
    def _when_and_what(self) -> MaintenanceWindow:
        dated = self.start is not None or self.end is not None
        scheduled = self.schedule is not None or self.duration is not None
        if dated == scheduled:
            raise ValueError("give either start and end, or schedule and duration")
        if dated and (self.start is None or self.end is None):
            raise ValueError("give both start and end")
        if scheduled and (self.schedule is None or self.duration is None):
            raise ValueError("give both schedule and duration")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        if not (self.matchers or self.hosts or self.services):
            raise ValueError("say what it covers: matchers, hosts or services")
        selective(parse_matchers(self.matcher_texts()), f"maintenance window {self.name!r}")
        return self

    def matcher_texts(self) -> list[str]:
        """Its matchers, with `hosts` and `services` as one anchored regex matcher each."""
        texts = list(self.matchers)
        for name, values in (("host", self.hosts), ("labels.service", self.services)):
            if values:
                texts.append(f"{name}=~{'|'.join(re.escape(v) for v in values)}")
        return texts


class InhibitRule(Strict):
    """While an alert matching `source_matchers` fires, alerts matching `target_matchers`
    that carry the same values of the `equal` fields are held (outcome "inhibited")."""

    name: str = ""
    source_matchers: list[MatcherText] = Field(min_length=1)
    target_matchers: list[MatcherText] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list, description="fields both must share")
    resolve_timeout: PositiveDuration = Field(
        RESOLVE_TIMEOUT,
        description="a firing source not repeated within this time stops holding "
        "(Alertmanager's resolve_timeout); set it above the source's repeat interval",
    )

    @field_validator("equal")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in FIELDS and not (name.startswith("labels.") and len(name) > 7):
                raise ValueError(f"unknown field {name!r} (use {', '.join(FIELDS)}, labels.NAME)")
        return value

    @model_validator(mode="after")
    def _selective(self) -> InhibitRule:
        selective(parse_matchers(self.source_matchers), "source_matchers")
        return self


def dated(value: datetime, zone: str) -> float:
    """Epoch seconds of a config date; one written without a zone is in `zone`."""
    return (value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))).timestamp()
