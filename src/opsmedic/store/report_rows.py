"""Bounded or streamed reads behind the reports (reports/), and their post-mortem drafts."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.lifecycle import KINDS, MITIGATED_LINE, RESOLVED_LINE, Action
from opsmedic.model import Deployment, Event, Incident, IncidentAlert, IncidentStatus, Run, Status
from opsmedic.store.codec import event_from_row, run_from_row
from opsmedic.store.deployment_rows import deployment_from_row
from opsmedic.store.flag_rows import Transactions
from opsmedic.store.incident_rows import incident_detail, incident_from_row
from opsmedic.store.run_counts import RunTallies, WindowRuns, run_tallies, window_runs
from opsmedic.store.schema import deployments, events, flag_changes, incidents, postmortems, runs
from opsmedic.store.schema import timeline as timeline_table
from opsmedic.utf8 import text

Find = Callable[[Connection, sa.Table, str, str], sa.RowMapping]
# One draft reads this many timeline lines, runs, deployments and flag changes at most; a
# flapping incident's draft says how many more there were rather than growing without end.
MAX_LINES = 2000
MAX_ROWS = 500
MAX_INCIDENTS = 2000  # incidents one on-call summary lists at most (it says when cut)
_RESOLUTION = (KINDS[Action.RESOLVE], KINDS[Action.CLOSE])


@dataclass(frozen=True, slots=True)
class Line:
    """A timeline row with its id, which a report cites."""

    id: int
    time: float
    kind: str
    message: str
    ref: str


@dataclass(frozen=True, slots=True)
class FlagMark:
    """A flag change, as a report cites it (flag_changes key and version)."""

    key: str
    version: int
    by: str
    run_id: str | None
    at: float


@dataclass(slots=True)
class Story:
    """An incident with what its draft cites: its lines, the events and runs they name, and
    the deployments and flag changes of its window."""

    incident: Incident
    alerts: list[IncidentAlert]
    lines: list[Line]
    lines_total: int
    events: dict[str, Event]
    runs: list[Run]
    runs_total: int
    deployments: list[Deployment]
    flag_changes: list[FlagMark]


@dataclass(frozen=True, slots=True)
class Draft:
    incident_id: str
    markdown: str
    generated_at: float
    trigger: str  # "auto" | "on_demand"


@dataclass(frozen=True, slots=True)
class Ending:
    """How an incident's first round ended: when mitigated and resolved, and by whom."""

    mitigated: Line | None
    resolved: Line | None

    @property
    def automatic(self) -> bool | None:
        """True: the engine resolved it (its alerts resolved); False: a person; None: open."""
        return None if self.resolved is None else self.resolved.kind == "status_changed"


class ReportReads:
    """What the reports read (Store.reports); every read is bounded or streamed."""

    def __init__(self, transaction: Transactions, find: Find) -> None:
        self._transaction = transaction
        self._find = find

    def story(self, ref: str, until: float) -> Story:
        """Incident `ref` (id, or its start or end) and what its draft cites; the window of
        deployments and flag changes ends at its resolution, or at `until` while it is open."""
        with self._transaction() as conn:
            incident, alerts, _ = incident_detail(
                conn, self._find(conn, incidents, ref, "incident")
            )
            iid = incident.id
            tc = timeline_table.c
            total = conn.execute(
                sa.select(sa.func.count()).select_from(timeline_table).where(tc.incident_id == iid)
            ).scalar_one()
            rows = conn.execute(
                sa.select(tc.id, tc.time, tc.kind, tc.message, tc.ref)
                .where(tc.incident_id == iid)
                .order_by(tc.time, tc.id)
                .limit(MAX_LINES)
            )
            lines = [Line(*row) for row in rows]
            refs = sorted({line.ref for line in lines if line.ref})
            found = conn.execute(sa.select(events).where(events.c.id.in_(refs))).mappings()
            by_id = {row["id"]: event_from_row(row) for row in found}
            n_runs = sa.select(sa.func.count()).select_from(runs).where(runs.c.incident_id == iid)
            run_rows = conn.execute(
                sa.select(runs)
                .where(runs.c.incident_id == iid)
                .order_by(runs.c.created_at, runs.c.id)
                .limit(MAX_ROWS)
            ).mappings()
            found_runs = [run_from_row(row) for row in run_rows]
            start = incident.opened_at
            end = incident.resolved_at if incident.resolved_at is not None else until
            return Story(incident, alerts, lines, total, by_id, found_runs,
                         conn.execute(n_runs).scalar_one(), _deployments(conn, start, end),
                         _flag_changes(conn, start, end))  # fmt: skip

    def incidents(self, since: float, until: float) -> tuple[list[Incident], int]:
        """Incidents opened in [since, until), oldest first, at most MAX_INCIDENTS of them,
        and how many there were."""
        c = incidents.c
        window = (c.opened_at >= since) & (c.opened_at < until)
        with self._transaction() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(incidents).where(window)
            ).scalar_one()
            rows = conn.execute(
                sa.select(incidents).where(window).order_by(c.opened_at, c.id).limit(MAX_INCIDENTS)
            ).mappings()
            return [incident_from_row(row) for row in rows], total

    def endings(self, ids: Sequence[str]) -> dict[str, Ending]:
        """Each incident's first mitigation line and first resolution line (as TTM and TTR
        count them, lifecycle.durations), by incident id."""
        tc = timeline_table.c
        automatic = tc.kind == "status_changed"
        wanted = (automatic & (tc.message.startswith(MITIGATED_LINE) | tc.message.startswith(
            RESOLVED_LINE))) | tc.kind.in_(_RESOLUTION)  # fmt: skip
        mitigated: dict[str, Line] = {}
        resolved: dict[str, Line] = {}
        with self._transaction() as conn:
            for chunk in _chunks(ids):
                stmt = (
                    sa.select(tc.incident_id, tc.id, tc.time, tc.kind, tc.message, tc.ref)
                    .where(tc.incident_id.in_(chunk), wanted)
                    .order_by(tc.time, tc.id)
                )
                for iid, *fields in conn.execute(stmt):
                    line = Line(*fields)
                    first = mitigated if line.message.startswith(MITIGATED_LINE) else resolved
                    first.setdefault(iid, line)
        return {i: Ending(mitigated.get(i), resolved.get(i)) for i in ids}

    def window_runs(
        self, since: float, until: float, failed_states: Collection[str], max_failed: int
    ) -> WindowRuns:
        """The runs created in [since, until) as the on-call summary counts them."""
        with self._transaction() as conn:
            return window_runs(conn, since, until, failed_states, max_failed)

    def run_tallies(
        self, since: float, until: float, *,
        rule: str | None = None, target: str | None = None, action: str | None = None,
    ) -> RunTallies:  # fmt: skip
        """The runs created in [since, until), grouped, with their durations."""
        with self._transaction() as conn:
            return run_tallies(conn, since, until, rule=rule, target=target, action=action)

    def noisiest_alerts(self, since: float, until: float, limit: int) -> list[tuple[Event, int]]:
        """The alerts that fired most often in [since, until) (opsmedic's own left out): one
        firing event of each (its labels name it) with their count, most first; counted in
        SQL. Resolved events are not counted: a healthy probe reading is one every interval."""
        c = events.c
        counted = (
            sa.select(c.fingerprint, sa.func.count().label("n"), sa.func.max(c.id).label("last"))
            .where(
                c.time >= since,
                c.time < until,
                c.source != "opsmedic",
                c.status == Status.FIRING.value,
            )
            .group_by(c.fingerprint)
            .order_by(sa.desc("n"), c.fingerprint)
            .limit(limit)
        )
        with self._transaction() as conn:
            found = conn.execute(counted).all()
            rows = conn.execute(
                sa.select(events).where(c.id.in_([last for _, _, last in found]))
            ).mappings()
            by_id = {row["id"]: event_from_row(row) for row in rows}
        return [(by_id[last], n) for _, n, last in found]

    def save_draft(self, draft: Draft) -> None:
        """Store `draft` as its incident's one draft, replacing an earlier one."""
        row = {"incident_id": draft.incident_id, "markdown": text(draft.markdown),
               "generated_at": draft.generated_at, "trigger": draft.trigger}  # fmt: skip
        with self._transaction(write=True) as conn:
            conn.execute(
                sa.delete(postmortems).where(postmortems.c.incident_id == draft.incident_id)
            )
            conn.execute(postmortems.insert(), row)

    def draft(self, incident_id: str) -> Draft | None:
        with self._transaction() as conn:
            row = conn.execute(
                sa.select(postmortems).where(postmortems.c.incident_id == incident_id)
            ).first()
        return None if row is None else Draft(*row)

    def due_for_draft(self, resolved_before: float, limit: int) -> list[str]:
        """Resolved or closed incidents, resolved before `resolved_before`, without a draft
        written since they resolved (reopened by hand and resolved again, or drafted while
        still open): oldest first, at most `limit`."""
        c = incidents.c
        done = (c.status == IncidentStatus.RESOLVED.value) | (
            c.status == IncidentStatus.CLOSED.value
        )
        p = postmortems.c
        drafted = sa.select(p.incident_id).where(
            p.incident_id == c.id, p.generated_at >= c.resolved_at
        )
        stmt = (
            sa.select(c.id)
            .where(done, c.resolved_at < resolved_before, ~drafted.exists())
            .order_by(c.resolved_at, c.id)
            .limit(limit)
        )
        with self._transaction() as conn:
            return list(conn.execute(stmt).scalars())


def _deployments(conn: Connection, start: float, end: float) -> list[Deployment]:
    """Deployments that ran during [start, end] (started before its end, not finished before
    its start), oldest first."""
    c = deployments.c
    stmt = (
        sa.select(deployments)
        .where(c.created_at <= end, sa.or_(c.finished_at.is_(None), c.finished_at >= start))
        .order_by(c.created_at, c.id)
        .limit(MAX_ROWS)
    )
    return [deployment_from_row(row) for row in conn.execute(stmt).mappings()]


def _flag_changes(conn: Connection, start: float, end: float) -> list[FlagMark]:
    c = flag_changes.c
    stmt = (
        sa.select(c.key, c.version, c.by, c.run_id, c.at)
        .where(c.at >= start, c.at <= end)
        .order_by(c.at, c.key, c.version)
        .limit(MAX_ROWS)
    )
    return [FlagMark(*row) for row in conn.execute(stmt)]


def _chunks(ids: Sequence[str], size: int = 1000) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
