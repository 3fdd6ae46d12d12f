"""Alertmanager-style matchers on an event's fields (`host=web-1`, `labels.env!~dev|test`), and
the silences made of them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import regex
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from opsmedic.config.types import Duration, PlainText
from opsmedic.logs import get_logger
from opsmedic.model import Event, new_id
from opsmedic.utf8 import hiding

FIELDS = ("source", "kind", "resource", "host", "severity")
OPS = ("=~", "!~", "!=", "=")  # longest first: `!=` is not `!` then `=`
_LABEL = "labels."
# A field name, then the first operator; the value is the rest, as written (quotes optional).
_SHAPE = re.compile(r"\s*(labels\.[^=!~\s]+|[a-z_]+)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
# A matcher's regex meets values that senders choose: a backtracking pattern such as (a|aa)+b
# on a long value would hold the event loop for seconds. The `regex` module stops a match at
# this timeout, as opsmedic.flags.operators does; the value then counts as not matched.
REGEX_TIMEOUT_S = 0.01
_timed_out: set[str] = set()  # patterns whose timeout was logged: once each, not per event


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition: `field op value`; a regex is fully anchored and compiled once. A label
    the event does not carry has the empty value, as in Alertmanager (`labels.x=` matches it)."""

    name: str
    op: str
    value: str
    regex: regex.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, event: Event) -> bool:
        return self.matches_value(value_of(event, self.name))

    def matches_value(self, actual: str) -> bool:
        if self.regex is not None:
            found = full_match(self.regex, actual)
            # Timed out: neither `=~` nor `!~` holds, so a value crafted to time out cannot
            # make a silence hold (nor a window, nor an inhibit rule).
            return found is not None and found == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def full_match(pattern: regex.Pattern[str], value: str) -> bool | None:
    """Whether the pattern matches all of the value (anchored, as in Alertmanager); None when
    it ran past REGEX_TIMEOUT_S, logged the first time for each pattern."""
    try:
        return pattern.fullmatch(value, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        if pattern.pattern not in _timed_out:
            _timed_out.add(pattern.pattern)
            get_logger(component="matchers").warning(
                "matcher.regex_timeout", pattern=pattern.pattern, timeout_s=REGEX_TIMEOUT_S,
                value_length=len(value),
            )  # fmt: skip
        return None


def value_of(event: Event, name: str) -> str:
    """The event's value for a matcher field (validated by `parse_matcher`)."""
    if name.startswith(_LABEL):
        return event.labels.get(name[len(_LABEL) :], "")
    return str(getattr(event, name))


def parse_matcher(text: str) -> Matcher:
    """`field op value` → a Matcher; ValueError saying what is wrong, naming the matcher."""
    if not isinstance(text, str):
        raise ValueError(f"a matcher is a string like host=web-1, got {text!r}")
    m = _SHAPE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"not a matcher: {text!r} (use FIELD OP VALUE with OP one of {', '.join(OPS)}, "
            "e.g. host=web-1, labels.env=~prod|staging)"
        )
    name, op, value = m.groups()
    if name not in FIELDS and not name.startswith(_LABEL):
        known = ", ".join((*FIELDS, "labels.NAME"))
        raise ValueError(f"{text!r}: unknown field {name!r} (use {known})")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    compiled = None
    if op in ("=~", "!~"):
        try:
            compiled = regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value, compiled)


def parse_matchers(texts: Sequence[str]) -> tuple[Matcher, ...]:
    """Every matcher of a list, in order; an empty list is refused (it would match all)."""
    if not texts:
        raise ValueError("give at least one matcher (an empty list would match every event)")
    return tuple(parse_matcher(t) for t in texts)


# A value no sender uses: a matcher that matches it too (`source=~.+`, `host=~[^/]+`,
# `kind!=`) matches whatever value a field has.
_ANY_VALUE = "opsmedic-any-value-7"


def selective(matchers: Sequence[Matcher], what: str = "a silence") -> None:
    """Refuse matchers that would all match nearly every event: as in Alertmanager, one must
    not match the empty value, or `host!=x` mutes the world. Judged on the values themselves,
    not on an event's defaults (severity `info`, which `severity!=info` escaped), and for the
    fields every event has, on any value too (`source=~.+`). A label may be absent: `labels.env=~.+`
    selects the events that carry it, as in Alertmanager."""
    if all(_broad(m) for m in matchers):
        raise ValueError(
            f"{what} needs one matcher that does not match an empty value or just any value "
            "(e.g. source=disk or host=~web-.+); these would match nearly every event"
        )


def _broad(matcher: Matcher) -> bool:
    if matcher.matches_value(""):
        return True
    return not matcher.name.startswith(_LABEL) and matcher.matches_value(_ANY_VALUE)


# How far ahead a silence may start, and how long it may last: a bound far inside what a
# datetime can show (year 9999), which a start or end past would make unreadable everywhere.
SILENCE_MAX_AHEAD = 365 * 86400.0
SILENCE_MAX_SPAN = 365 * 86400.0


@dataclass(frozen=True, slots=True)
class Silence:
    """Matches held from `starts_at` until `ends_at` (epoch seconds, active while
    starts_at ≤ t < ends_at); expiring one moves its end to the moment it was expired."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float

    def active(self, at: float) -> bool:
        return self.starts_at <= at < self.ends_at

    def state(self, at: float) -> str:
        """pending, active or expired at `at`, as Alertmanager names them."""
        return "pending" if at < self.starts_at else "active" if at < self.ends_at else "expired"

    def as_dict(self, now: float) -> dict[str, object]:
        """The JSON of the API and of `silence list --json`."""
        return {"id": self.id, "matchers": [str(m) for m in self.matchers],
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "state": self.state(now), "created_by": self.created_by,
                "comment": self.comment, "created_at": self.created_at}  # fmt: skip


def new_silence(
    matchers: Sequence[str], *, now: float, starts_at: float | None, ends_at: float | None,
    duration: float | None, created_by: str, comment: str,
) -> Silence:  # fmt: skip
    """A silence as the CLI and the API make it: from `starts_at` (default now) for `duration`
    or until `ends_at` (one of the two); ValueError naming what is wrong."""
    parsed = parse_matchers(matchers)
    selective(parsed)
    if (duration is None) == (ends_at is None):
        raise ValueError("give either a duration or an end")
    if duration is not None and duration <= 0:
        raise ValueError(f"the duration must be positive, got {duration:g}s")
    start = now if starts_at is None else starts_at
    # Written as `not ≤`: a NaN fails them too.
    if not start <= now + SILENCE_MAX_AHEAD:
        raise ValueError("the start is more than a year from now")
    end = start + duration if duration is not None else ends_at
    assert end is not None
    if not end <= start + SILENCE_MAX_SPAN:
        what = "the duration" if duration is not None else "the end"
        raise ValueError(f"{what} would make the silence last more than a year")
    if end <= now:
        raise ValueError("the end is in the past: that silence would never hold anything")
    if end <= start:
        raise ValueError("the end is not after the start")
    if not comment.strip():
        raise ValueError("say why in a comment: the timeline of what it holds shows it")
    if (problem := hiding(comment)) is not None:  # the API's PlainText says so first
        raise ValueError(f"comment: {problem}")
    return Silence(new_id(), parsed, start, end, created_by, comment, now)


class SilenceIn(BaseModel):
    """A new silence: matchers, and a duration or an end (ISO 8601 with its zone). The body of
    `POST /api/v1/silences` and the dashboard's form: one set of bounds for both."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[Annotated[str, Field(max_length=1000)]] = Field(min_length=1, max_length=100)
    comment: PlainText = Field(min_length=1, max_length=2000)
    duration: Duration | None = Field(None, description="e.g. 2h; or give ends_at")
    starts_at: AwareDatetime | None = Field(None, description="default: now")
    ends_at: AwareDatetime | None = None

    @field_validator("matchers")
    @classmethod
    def _selective(cls, texts: list[str]) -> list[str]:
        # Here, not only in new_silence: a bad matcher is then named as the field it is in.
        selective(parse_matchers(texts))
        return texts

    def silence(self, now: float, created_by: str) -> Silence:
        """The silence asked for, checked by new_silence (ValueError naming what is wrong)."""
        return new_silence(
            self.matchers, now=now, starts_at=_epoch(self.starts_at), ends_at=_epoch(self.ends_at),
            duration=self.duration, created_by=created_by, comment=self.comment,
        )  # fmt: skip


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def matches_all(matchers: Sequence[Matcher], event: Event) -> bool:
    return all(m.matches(event) for m in matchers)
