"""Incident rows: the upserts the engine commits with its events, and the reads of the CLI/API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.errors import IncidentMoved
from opsmedic.model import Incident, IncidentAlert, IncidentChanges, IncidentStatus, TimelineEntry
from opsmedic.store.codec import dumps_json
from opsmedic.store.schema import incident_alerts, incidents, postmortems, timeline
from opsmedic.utf8 import text

# ON CONFLICT … DO UPDATE is spelled alike by SQLite (≥ 3.24) and PostgreSQL, so both run the
# same statements: with ? marks and tuples on the SQLite fast path (binding by position is
# about a quarter cheaper per row), with :names through SQLAlchemy on PostgreSQL.
_INCIDENT_COLUMNS = ("id", "key", "title", "source", "severity", "status", "opened_at",
                     "updated_at", "mitigated_at", "resolved_at", "events", "flaps",
                     "flapping", "acknowledged_at", "acknowledged_by", "assignee", "closed_at",
                     "human_actions")  # fmt: skip
# The engine writes an incident's state only if it has seen every action people took on it
# (lifecycle.py; `human_actions` counts them): checked in the write's own transaction, the
# rows locked, so that an alert never joins an incident closed since the engine read it, nor
# a run's success marks mitigated one resolved meanwhile. Otherwise IncidentMoved: nothing is
# written and the engine reads the incidents again and plans again (Engine._commit).
_SET = ", ".join(f"{c} = excluded.{c}" for c in (
    "status", "mitigated_at", "resolved_at", "acknowledged_at", "acknowledged_by", "assignee",
    "closed_at"))  # fmt: skip
_HUMAN_ACTIONS = _INCIDENT_COLUMNS.index("human_actions")
_CHUNK = 500  # ids per check, far below SQLite's 32,766 parameters
_ALERT_COLUMNS = ("incident_id", "fingerprint", "status", "first_seen", "last_seen", "events")
_TIMELINE_COLUMNS = ("incident_id", "time", "kind", "message", "ref", "evidence")
_UPSERT_INCIDENT = """
INSERT INTO incidents ({columns}) VALUES ({marks})
ON CONFLICT (id) DO UPDATE SET severity = excluded.severity,
    updated_at = excluded.updated_at, events = excluded.events, flaps = excluded.flaps,
    flapping = excluded.flapping, {set}
"""
_MERGE_ALERT = """
INSERT INTO incident_alerts ({columns}) VALUES ({marks})
ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status = excluded.status,
    last_seen = excluded.last_seen, events = incident_alerts.events + excluded.events
"""
_APPEND_TIMELINE = "INSERT INTO timeline ({columns}) VALUES ({marks})"


def _statement(template: str, columns: tuple[str, ...], named: bool) -> str:
    marks = ", ".join(f":{c}" for c in columns) if named else ", ".join("?" * len(columns))
    return template.format(columns=", ".join(columns), marks=marks, set=_SET)


_STATEMENTS = [
    (_UPSERT_INCIDENT, _INCIDENT_COLUMNS),
    (_MERGE_ALERT, _ALERT_COLUMNS),
    (_APPEND_TIMELINE, _TIMELINE_COLUMNS),
]
_POSITIONAL = [(_statement(t, c, named=False), c) for t, c in _STATEMENTS]
_NAMED = [(_statement(t, c, named=True), c) for t, c in _STATEMENTS]
Row = tuple[Any, ...]


@dataclass(slots=True)
class IncidentRows:
    """IncidentChanges as plain rows: a snapshot taken on the event loop when the changes are
    made (the incidents change on), written later in order."""

    incidents: list[Row] = field(default_factory=list)
    alerts: list[Row] = field(default_factory=list)
    timeline: list[Row] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.incidents or self.alerts or self.timeline)

    def extend(self, later: IncidentRows) -> None:
        """Append rows made later: upserts apply in order, alert counts add up."""
        self.incidents += later.incidents
        self.alerts += later.alerts
        self.timeline += later.timeline

    @classmethod
    def of(cls, changes: IncidentChanges) -> IncidentRows:
        return cls(
            [
                (
                    i.id,
                    text(i.key),
                    text(i.title),
                    text(i.source),
                    text(i.severity),
                    str(i.status),
                    i.opened_at,
                    i.updated_at,
                    i.mitigated_at,
                    i.resolved_at,
                    i.events,
                    i.flaps,
                    i.flapping,
                    i.acknowledged_at,
                    text(i.acknowledged_by),
                    text(i.assignee),
                    i.closed_at,
                    i.human_actions,
                )
                for i in changes.incidents.values()
            ],
            [
                (iid, text(fp), d.status, d.first_seen, d.last_seen, d.events)
                for (iid, fp), d in changes.alerts.items()
            ],
            [
                (t.incident_id, t.time, t.kind, text(t.message), t.ref, _json(t.evidence))
                for t in changes.lines()
            ],
        )

    def write_sqlite(self, cursor: Any) -> None:
        """On the caller's sqlite3 cursor, inside its transaction (BEGIN IMMEDIATE: no one
        acts on an incident between the check and the write)."""
        ids = self._ids()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))  # only marks: the ids are bound
            sql = f"SELECT id, human_actions FROM incidents WHERE id IN ({marks})"  # noqa: S608
            cursor.execute(sql, chunk)
            self._check(cursor.fetchall())
        for (sql, _), rows in zip(_POSITIONAL, self._tables(), strict=True):
            if rows:
                cursor.executemany(sql, rows)

    def write(self, conn: Connection) -> None:
        """Through SQLAlchemy (PostgreSQL), inside the caller's transaction; the incidents'
        rows are locked first, as a person's action locks its one (incident_actions.py)."""
        ids = self._ids()
        for start in range(0, len(ids), _CHUNK):
            check = (sa.select(incidents.c.id, incidents.c.human_actions)
                     .where(incidents.c.id.in_(ids[start : start + _CHUNK]))
                     .order_by(incidents.c.id).with_for_update())  # fmt: skip
            self._check([tuple(r) for r in conn.execute(check)])
        for (sql, columns), rows in zip(_NAMED, self._tables(), strict=True):
            if rows:
                conn.execute(sa.text(sql), [dict(zip(columns, r, strict=True)) for r in rows])

    def _ids(self) -> list[str]:
        return sorted({row[0] for row in self.incidents})

    def _check(self, stored: Sequence[Row]) -> None:
        """IncidentMoved if people acted on one of these incidents after the engine read it
        (each row carries the count of actions the engine had seen when it was made)."""
        acted: dict[str, int] = dict(stored)
        moved = sorted({row[0] for row in self.incidents
                        if acted.get(row[0], 0) > row[_HUMAN_ACTIONS]})  # fmt: skip
        if moved:
            raise IncidentMoved(moved)

    def _tables(self) -> tuple[list[Row], list[Row], list[Row]]:
        return self.incidents, self.alerts, self.timeline


def _json(value: dict[str, Any] | None) -> str | None:
    """A JSON column's text, as both write paths bind it (SQL NULL for none)."""
    return None if value is None else dumps_json(value)


def incident_from_row(row: sa.RowMapping, alerts: dict[str, str] | None = None) -> Incident:
    return Incident(
        id=row["id"], key=row["key"], title=row["title"], source=row["source"],
        severity=row["severity"], status=IncidentStatus(row["status"]),
        opened_at=row["opened_at"], updated_at=row["updated_at"],
        mitigated_at=row["mitigated_at"], resolved_at=row["resolved_at"], events=row["events"],
        alerts=alerts or {}, flaps=row["flaps"], flapping=bool(row["flapping"]),
        acknowledged_at=row["acknowledged_at"], acknowledged_by=row["acknowledged_by"],
        assignee=row["assignee"], closed_at=row["closed_at"],
        human_actions=row["human_actions"], human_at=row["human_at"],
    )  # fmt: skip


_DONE = (IncidentStatus.RESOLVED.value, IncidentStatus.CLOSED.value)


def load_active(conn: Connection, resolved_since: float | None = None) -> list[Incident]:
    """Incidents not resolved nor closed, with their member alerts: the tracker's state at
    start; with `resolved_since`, also those resolved since then (which an alert may reopen;
    a closed one it may not)."""
    active: sa.ColumnElement[bool] = incidents.c.status.not_in(_DONE)
    if resolved_since is not None:
        active = active | (
            (incidents.c.status == IncidentStatus.RESOLVED.value)
            & (incidents.c.resolved_at >= resolved_since)
        )
    return with_alerts(conn, sa.select(incidents).where(active))


def with_alerts(conn: Connection, query: sa.Select[Any]) -> list[Incident]:
    """The incidents `query` selects, each with its member alerts' last status."""
    rows = conn.execute(query).mappings()
    found = {row["id"]: incident_from_row(row) for row in rows}
    if found:
        members = conn.execute(
            sa.select(incident_alerts.c.incident_id, incident_alerts.c.fingerprint,
                      incident_alerts.c.status)
            .where(incident_alerts.c.incident_id.in_(list(found)))
        )  # fmt: skip
        for incident_id, fingerprint, status in members:
            found[incident_id].alerts[fingerprint] = status
    return list(found.values())


def list_incidents(
    conn: Connection, *, status: IncidentStatus | None, since: float | None, limit: int
) -> list[Incident]:
    """Incidents, newest first."""
    stmt = sa.select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
    if status is not None:
        stmt = stmt.where(incidents.c.status == status.value)
    if since is not None:
        stmt = stmt.where(incidents.c.opened_at >= since)
    return [incident_from_row(row) for row in conn.execute(stmt.limit(limit)).mappings()]


def incident_detail(
    conn: Connection, row: sa.RowMapping
) -> tuple[Incident, list[IncidentAlert], list[TimelineEntry]]:
    """An incident with its member alerts and its timeline in order."""
    alerts = [
        IncidentAlert(r["fingerprint"], r["status"], r["first_seen"], r["last_seen"], r["events"])
        for r in conn.execute(
            sa.select(incident_alerts)
            .where(incident_alerts.c.incident_id == row["id"])
            .order_by(incident_alerts.c.first_seen)
        ).mappings()
    ]
    lines = [
        TimelineEntry(r["incident_id"], r["time"], r["kind"], r["message"], r["ref"], r["evidence"])
        for r in conn.execute(
            sa.select(timeline)
            .where(timeline.c.incident_id == row["id"])
            .order_by(timeline.c.id)  # the order opsmedic learned things in
        ).mappings()
    ]
    incident = incident_from_row(row, {a.fingerprint: a.status for a in alerts})
    return incident, alerts, lines


def delete_incidents(conn: Connection, ids: Sequence[str]) -> int:
    """Delete resolved incidents (with their alerts, timeline and post-mortem draft) by id;
    returns how many."""
    if not ids:
        return 0
    for table in (incident_alerts, timeline, postmortems):
        conn.execute(sa.delete(table).where(table.c.incident_id.in_(ids)))
    return conn.execute(sa.delete(incidents).where(incidents.c.id.in_(ids))).rowcount
