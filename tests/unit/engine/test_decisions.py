"""SuppressionLog alone: rows coalesced per key, timeline lines counted up, memory bounded."""

from __future__ import annotations

import pytest

from opsmedic.engine import decisions
from opsmedic.engine.decisions import Outcome, RuleOutcome, SuppressionLog
from opsmedic.model import Event, IncidentChanges

T0 = 1_800_000_000.0
THROTTLED = RuleOutcome("r", Outcome.THROTTLED, "once_within 60s")


def alert(n: int, at: float, incident: str = "i1") -> Event:
    event = Event(source="disk", resource=f"/d{n}", host="h", time=T0 + at)
    event.incident_id = incident
    return event


class Log(SuppressionLog):
    """Each event recorded at its own time, as a replay records it."""

    def add(
        self, event: Event, found: RuleOutcome, changes: IncidentChanges, at: float | None = None
    ) -> None:
        super().add(event, found, changes, event.time if at is None else at)


def test_a_batch_coalesces_rows_and_lines_and_the_next_counts_the_line_up() -> None:
    """A long-firing alert's repeats keep its old start as their time: the row's seen times
    and the line's are when each was recorded, the event's own time kept apart."""
    log, changes = Log(), IncidentChanges()
    events = [alert(1, -3600) for _ in range(5)]
    for at, event in enumerate(events):
        log.add(event, THROTTLED, changes, T0 + at)
    (line,) = changes.timeline
    assert line.message == "rule r throttled \u00d71 since 08:00:00: once_within 60s"
    assert line.time == T0
    rows = log.take()
    ((key, row),) = rows.suppressed.items()
    assert key[0] == "r" and key[2] == "throttled" and row[2] == 5  # counted once per event
    assert (row[3], row[4], row[5], row[7], row[8]) == (
        T0,
        T0 + 4,
        events[-1].id,
        events[0].id,
        T0 - 3600,
    )
    assert rows.relabels == [(line.ref, "rule r throttled \u00d75 since 08:00:00, last 08:00:04: "
                              "once_within 60s")]  # fmt: skip
    log.add(alert(1, 9), THROTTLED, IncidentChanges())
    assert log.take().relabels == [(line.ref, "rule r throttled \u00d76 since 08:00:00, last "
                                    "08:00:09: once_within 60s")]  # fmt: skip


def test_a_hold_keeps_its_own_timeline_line_and_no_incident_gets_none() -> None:
    log, changes = Log(), IncidentChanges()
    log.add(alert(1, 0), RuleOutcome("r", Outcome.SILENCED, "silenced: by s-1"), changes)
    log.add(alert(2, 0, incident=""), THROTTLED, changes)
    assert changes.timeline == [] and len(log.take().suppressed) == 2


def test_past_its_memory_the_counts_so_far_are_written_and_a_new_line_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decisions, "_NOTED_MAX", 2)
    log, changes = Log(), IncidentChanges()
    log.add(alert(1, 0, "i1"), THROTTLED, changes)
    log.add(alert(1, 1, "i1"), THROTTLED, changes)
    log.add(alert(2, 2, "i2"), THROTTLED, changes)
    log.add(alert(3, 3, "i3"), THROTTLED, changes)  # memory full: i1's count is written first
    log.add(alert(1, 4, "i1"), THROTTLED, changes)  # a new line for i1 (memory: i3, i1)
    assert [e.incident_id for e in changes.timeline] == ["i1", "i2", "i3", "i1"]
    relabels = log.take().relabels
    assert [m.split(" since")[0] for _, m in relabels] == ["rule r throttled \u00d72"]
