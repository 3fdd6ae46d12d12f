"""Why not? The outcome of each rule an event matched, and the compact record of suppressions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from opsmedic.model import Event, IncidentChanges, TimelineEntry
from opsmedic.store.decision_rows import TIMELINE_KIND, DecisionRows
from opsmedic.utf8 import text


class Outcome(StrEnum):
    """What a rule's match led to (docs/decisions.md). Only `planned` starts a run."""

    PLANNED = "planned"
    THROTTLED = "throttled"  # its throttle fired within `once_within` for the same key
    WAITING_FOR = "waiting_for"  # its `for:` has not held long enough yet
    IN_FLIGHT = "in_flight"  # a run of the rule for the same alert is still running
    OVER_LIMIT = "over_limit"  # `limit.max_runs` reached within `limit.within`
    QUEUE_FULL = "queue_full"  # the investigation pool's slots and backlog are all taken
    SILENCED = "silenced"  # held by a silence or a maintenance window
    INHIBITED = "inhibited"  # held by an inhibition rule
    HELD = "held"  # held while a service it depends on fails (engine/holds.py)
    DISABLED = "disabled"  # the rule is written with `enabled: false`
    ACKNOWLEDGED = "acknowledged"  # `on_acknowledge: stop` and its incident is acknowledged


# Every hold goes through the planner's one held path and says its own outcome; its reason
# is what the reply, the timeline and `runs --suppressed` show.
# Held matches already have their line on the timeline (engine/holds.py): not a second one.
_OWN_LINE = frozenset({Outcome.SILENCED, Outcome.INHIBITED, Outcome.HELD})
_NOTED_MAX = 10_000  # coalesced timeline lines kept in memory; past it a new line starts
_TIMES = "\u00d7"  # the multiplication sign of "throttled ×14"  # noqa: RUF003


class RuleOutcome(NamedTuple):
    """One rule's outcome for one event, as the webhook reply and `explain` show it."""

    rule: str
    outcome: Outcome
    detail: str = ""


def secs(seconds: float) -> str:
    """Seconds as people read them in a detail: to the millisecond at most, never in exponent
    notation (12.3, not 12.300000000000001; 1209600, not 1.2096e+06)."""
    shown = f"{seconds:.3f}"
    return shown.rstrip("0").rstrip(".") if "." in shown else shown


def clock(ts: float) -> str:
    """An event time as the timeline's lines say it: HH:MM:SS UTC."""
    try:
        return time.strftime("%H:%M:%S", time.gmtime(ts))
    except (OverflowError, ValueError, OSError):
        return f"{ts:g}"


@dataclass(slots=True)
class _Line:
    """A coalesced timeline line: its ref (the key of its row), how many, since when, the last."""

    ref: str
    count: int
    since: float
    last: RuleOutcome
    last_at: float

    def message(self) -> str:
        found = self.last
        text_ = f"rule {found.rule} {found.outcome} {_TIMES}{self.count} since {clock(self.since)}"
        if self.count > 1:
            text_ += f", last {clock(self.last_at)}"
        return text_ + (f": {found.detail}" if found.detail else "")


class SuppressionLog:
    """Collects a batch's suppressed decisions as few rows: one per (rule, alert, outcome) for
    `runs --suppressed`, and one coalesced line per (incident, rule, outcome) on the timeline
    ("throttled \u00d714 since 03:02:10"), updated in place. A flood of suppressed events thus
    writes a bounded number of rows per batch, whatever its size."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._rows = DecisionRows()
        self._lines: dict[tuple[str, str, Outcome], _Line] = {}
        self._dirty: set[tuple[str, str, Outcome]] = set()

    def add(self, event: Event, found: RuleOutcome, changes: IncidentChanges, at: float) -> None:
        """Record one suppressed decision (anything but `planned`), decided at `at`: when
        opsmedic received the event (its own time may be old: a long-firing alert's repeats
        keep their start), which the row's seen times, its prune and its line go by."""
        # Made storable (utf8.text) once per row as it is written, not once per event here.
        self._rows.suppress(
            (found.rule, event.fingerprint, found.outcome.value), event.target,
            event.incident_id or None, at, event.id, found.detail, event.time,
        )  # fmt: skip
        if not event.incident_id or found.outcome in _OWN_LINE:
            return
        key = (event.incident_id, found.rule, found.outcome)
        line = self._lines.get(key)
        if line is not None:
            line.count += 1
            line.last, line.last_at = found, at
            self._dirty.add(key)
            return
        if len(self._lines) >= _NOTED_MAX:
            self._count_up()  # the counts of this batch are kept; the memory starts afresh
            self._lines.clear()
        line = self._lines[key] = _Line(
            f"{found.rule}:{found.outcome}:{event.id}", 1, at, found, at
        )
        changes.timeline.append(TimelineEntry(
            event.incident_id, at, TIMELINE_KIND, line.message(), line.ref
        ))  # fmt: skip

    def take(self) -> DecisionRows:
        """The batch's rows, with the timeline lines counted up since the last take."""
        self._count_up()
        rows, self._rows = self._rows, DecisionRows()
        return rows

    def _count_up(self) -> None:
        for key in self._dirty:
            line = self._lines[key]
            self._rows.relabel(line.ref, text(line.message()))
        self._dirty.clear()

    def forget(self) -> None:
        """After a failed commit: the lines in memory may not be in the store; start anew."""
        self._lines.clear()
        self._dirty.clear()
        self._rows = DecisionRows()
