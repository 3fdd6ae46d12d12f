"""The Now page's reads: how many incidents are active, and what automation did for a page of
them (their latest runs, read by the incident index)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from opsmedic.model import IncidentStatus, RunState
from opsmedic.store.history_rows import Transactions
from opsmedic.store.schema import incidents, runs


@dataclass(frozen=True, slots=True)
class RunMark:
    """A run as a line of a listing names it: no steps, no event (a page of 100 incidents
    reads 500 of these in a few ms; whole runs with their steps took ten times as long)."""

    id: str
    incident_id: str
    rule: str
    state: RunState
    dry_run: bool
    created_at: float


class NowReads:
    """Reads of the Now page (Store.now): bounded, by indexed columns."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def count_incidents(self, statuses: Sequence[IncidentStatus]) -> int:
        """How many incidents are in one of `statuses` (by the status index): the page lists
        the newest 100 and says of how many."""
        stmt = sa.select(sa.func.count()).select_from(incidents)
        stmt = stmt.where(incidents.c.status.in_([s.value for s in statuses]))
        with self._transaction() as conn:
            return int(conn.execute(stmt).scalar_one())

    def latest_runs(self, incident_ids: Sequence[str], per: int) -> dict[str, list[RunMark]]:
        """The newest `per` runs of each incident (newest first), by incident; an incident
        without runs is absent."""
        if not incident_ids:
            return {}
        c = runs.c
        rank = sa.func.row_number().over(
            partition_by=c.incident_id, order_by=(c.created_at.desc(), c.id.desc())
        )
        ranked = (
            sa.select(c.id, c.incident_id, c.rule, c.state, c.dry_run, c.created_at,
                      rank.label("n"))
            .where(c.incident_id.in_(list(incident_ids)))
            .subquery()
        )  # fmt: skip
        stmt = (
            sa.select(ranked.c.id, ranked.c.incident_id, ranked.c.rule, ranked.c.state,
                      ranked.c.dry_run, ranked.c.created_at)
            .where(ranked.c.n <= per)
            .order_by(ranked.c.incident_id, ranked.c.n)
        )  # fmt: skip
        with self._transaction() as conn:
            rows = conn.execute(stmt).all()
        found: dict[str, list[RunMark]] = {}
        for row in rows:
            mark = RunMark(row[0], row[1], row[2], RunState(row[3]), row[4], row[5])
            found.setdefault(mark.incident_id, []).append(mark)
        return found
