"""`opsmedic runs --suppressed`: the decisions that started no run, one counted row per kind."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from opsmedic.cli.output import Cell, print_json, print_table, shorten

if TYPE_CHECKING:
    from opsmedic.store.store import Store


def print_suppressed(
    store: Store, rule: str | None, start: float, limit: int, as_json: bool, since: str
) -> None:
    """Newest (last seen) first; one row per rule, alert and outcome (docs/decisions.md)."""
    from opsmedic.cli.history import when

    found = store.suppressed.list(rule=rule, since=start, limit=limit)
    if as_json:
        print_json([dataclasses.asdict(s) for s in found])
        return
    # Seen: when opsmedic recorded the decisions; the last event's own time is apart (a
    # long-firing alert's repeats keep their start).
    columns = ["rule", "outcome", "count", "first seen (UTC)", "last seen (UTC)", "target",
               "last event", "its time (UTC)", "incident", "why"]  # fmt: skip
    rows: list[list[Cell]] = [
        [s.rule, s.outcome, str(s.count), when(s.first_seen), when(s.last_seen), s.target,
         s.last_event_id, when(s.last_event_time), s.incident_id or "", shorten(s.detail)]
        for s in found
    ]  # fmt: skip
    title = f"suppressed decisions since {since}" + (f" for rule {rule}" if rule else "")
    print_table(title, columns, rows, empty="no suppressed decisions")
