"""The `slos:` section: service level objectives over opsmedic's probe readings, events or
Prometheus counters (docs/slo.md); OpenSLO files become the same models (config/openslo.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator, model_validator

from opsmedic.config.located import unknown_name
from opsmedic.config.muting import MatcherText
from opsmedic.config.types import (
    Duration,
    HttpUrlText,
    PositiveDuration,
    Strict,
    parse_duration,
)

# Samples are kept per minute: every length an SLO names is a whole number of minutes.
MINUTE = 60.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# What `window:` may say besides a rolling duration: the calendar period, in UTC.
CALENDAR = ("month",)
_KINDS = ("availability", "latency", "events", "prometheus")
# Sloth's placeholder for a query's range: a Prometheus SLI's queries are evaluated over 1m.
WINDOW = "{{.window}}"
# The longest rolling window: its minutes are summed at each budget read (and 400 days of the
# largest minute counts still sum within a 64-bit integer: slo/prometheus_sli.py).
MAX_WINDOW_S = 400 * 86400.0
# The smallest objective, in percent: below it an SLO asks next to nothing.
MIN_OBJECTIVE = 0.001
# Probe types whose reading's value is a latency in milliseconds.
LATENCY_PROBES = ("http",)


def whole_minutes(seconds: float, what: str) -> float:
    if seconds < MINUTE or seconds % MINUTE:
        raise ValueError(f"{what} must be a whole number of minutes (samples are per minute)")
    return seconds


class ProbeSli(Strict):
    """Readings of one configured probe: good when the reading is ok."""

    probe: str = Field(min_length=1, description="a name from `probes:`")


class LatencySli(ProbeSli):
    """Readings of one http probe: good when ok and answered within `threshold`."""

    threshold: PositiveDuration = Field(description="e.g. 200ms: the probe's latency limit")


class EventsSli(Strict):
    """Events: those matching every `total` matcher count; of them, those also matching every
    `bad` matcher are bad (or, with `good`, those not matching every `good` matcher)."""

    total: list[MatcherText] = Field(min_length=1)
    bad: list[MatcherText] | None = Field(None, min_length=1)
    good: list[MatcherText] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_side(self) -> EventsSli:
        if (self.bad is None) == (self.good is None):
            raise ValueError("give either bad or good matchers (not both)")
        return self


class PrometheusSli(Strict):
    """Counters in Prometheus, Sloth-style: each query holds `{{.window}}`, which opsmedic
    makes `1m` and evaluates at the end of each minute (docs/slo.md#prometheus)."""

    url: HttpUrlText = Field(description="Prometheus' base URL, e.g. http://127.0.0.1:9090")
    total: str = Field(description="e.g. sum(increase(http_requests_total[{{.window}}]))")
    bad: str | None = None
    good: str | None = None
    timeout: PositiveDuration = Field(5.0, description="one query's bound; past it, a gap")

    @field_validator("total", "bad", "good")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None and WINDOW not in value:
            raise ValueError(f"the query needs {WINDOW} where its range goes, e.g. "
                             f"sum(increase(http_requests_total[{WINDOW}]))")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _one_side(self) -> PrometheusSli:
        if (self.bad is None) == (self.good is None):
            raise ValueError("give either a bad or a good query (not both)")
        return self


class Sli(Strict):
    """Exactly one kind of indicator."""

    availability: ProbeSli | None = None
    latency: LatencySli | None = None
    events: EventsSli | None = None
    prometheus: PrometheusSli | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Sli:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        """availability | latency | events | prometheus."""
        return next(k for k in _KINDS if getattr(self, k) is not None)

    def probe_problem(self, probe_types: Mapping[str, str]) -> str | None:
        """Why its probe (name → type of the configured ones) cannot feed it; None if it can."""
        ref = self.availability or self.latency
        if ref is None:
            return None
        kind = probe_types.get(ref.probe)
        if kind is None:
            return unknown_name("probe", ref.probe, probe_types)
        if self.latency is not None and kind not in LATENCY_PROBES:
            return (f"probe {ref.probe!r} is a {kind} probe: latency needs one whose value is "
                    f"milliseconds ({', '.join(LATENCY_PROBES)})")  # fmt: skip
        return None


class Timeslices(Strict):
    """Time-slice budgeting: a slice is good when its good ratio reaches `good_ratio`."""

    slice: Duration = Field(default=60.0, description="slice length, whole minutes")
    good_ratio: float = Field(
        default=0.99, gt=0, le=1, allow_inf_nan=False, description="of a slice's samples"
    )
    # A slice without samples (probing stopped, the host was down) is not silently good.
    empty: Literal["good", "bad", "skip"] = Field(
        default="skip", description="how a slice with no samples counts: good, bad, or not at all"
    )

    @field_validator("slice")
    @classmethod
    def _whole(cls, value: float) -> float:
        return whole_minutes(value, "slice")


class SloConfig(Strict):
    name: str = Field(description="letters, digits, _ . - ; labels its alerts and metrics")
    service: str = ""
    description: str = ""
    sli: Sli
    objective: float = Field(
        allow_inf_nan=False, description="percent good, e.g. 99.9; strictly between 0 and 100"
    )
    window: str = Field(default="30d", description="rolling (e.g. 30d, 28d) or `month` (UTC)")
    budgeting: Literal["occurrences", "timeslices"] = "occurrences"
    timeslices: Timeslices | None = None
    min_requests: int = Field(
        default=10, ge=1, description="samples the long window needs before an alert fires"
    )
    alerts: bool = Field(default=True, description="emit slo_burn events")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"{value!r}: use letters, digits and _ . - (a letter or digit first)")
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if value >= 100:
            raise ValueError(
                f"objective {value:g} %: 100 % or more leaves no error budget "
                "(every failure breaks it); use e.g. 99.9"
            )
        if value <= 0:
            raise ValueError(f"objective {value:g} %: give a percentage above 0, e.g. 99.9")
        if value < MIN_OBJECTIVE:
            raise ValueError(f"objective {value:g} %: below {MIN_OBJECTIVE:g} %, which asks "
                             "next to nothing; give at least that, e.g. 90")  # fmt: skip
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value in CALENDAR:
            return value
        seconds = whole_minutes(parse_duration(value), "window")
        if seconds > MAX_WINDOW_S:
            raise ValueError(f"window {value}: at most 400d (its minutes are summed "
                             "at every budget read)")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _budgeting(self) -> SloConfig:
        if self.budgeting == "timeslices" and self.timeslices is None:
            self.timeslices = Timeslices()
        if self.budgeting == "occurrences" and self.timeslices is not None:
            raise ValueError("timeslices is for budgeting: timeslices")
        if self.timeslices is not None:
            # A month is whole days: a slice that divides a day divides every month.
            length = self.rolling_s or 86400.0
            if length % self.timeslices.slice:
                whole = f"window {self.window}" if self.rolling_s else "day (of a month window)"
                raise ValueError(f"timeslices.slice {self.timeslices.slice / MINUTE:g}m does "
                                 f"not divide the {whole} into whole slices")  # fmt: skip
        return self

    @property
    def rolling_s(self) -> float | None:
        """The rolling window in seconds; None for a calendar window."""
        return None if self.window in CALENDAR else parse_duration(self.window)


def duplicate_names(slos: list[SloConfig]) -> list[tuple[int, str]]:
    """(index, message) of each SLO whose name an earlier one has."""
    seen: set[str] = set()
    found = []
    for i, slo in enumerate(slos):
        if slo.name in seen:
            found.append((i, f"duplicate SLO name {slo.name!r}"))
        seen.add(slo.name)
    return found
