"""Incident rows: the upserts the engine commits with its events, and the reads of the CLI/API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.incidents import IncidentChanges
from opsmedic.model import Incident, IncidentStatus, TimelineEntry
from opsmedic.store.codec import text
from opsmedic.store.schema import incident_alerts, incidents, timeline

# One text per statement, with :named parameters that both sqlite3 and SQLAlchemy's text()
# accept, so the SQLite fast path and the PostgreSQL path run the very same SQL.
# ON CONFLICT … DO UPDATE is spelled alike by SQLite (≥ 3.24) and PostgreSQL.
_UPSERT_INCIDENT = """
INSERT INTO incidents (id, key, title, source, severity, status, opened_at, updated_at,
                       mitigated_at, resolved_at, events)
VALUES (:id, :key, :title, :source, :severity, :status, :opened_at, :updated_at,
        :mitigated_at, :resolved_at, :events)
ON CONFLICT (id) DO UPDATE SET severity = excluded.severity, status = excluded.status,
    updated_at = excluded.updated_at, mitigated_at = excluded.mitigated_at,
    resolved_at = excluded.resolved_at, events = excluded.events
"""
_MERGE_ALERT = """
INSERT INTO incident_alerts (incident_id, fingerprint, status, first_seen, last_seen, events)
VALUES (:incident_id, :fingerprint, :status, :first_seen, :last_seen, :events)
ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status = excluded.status,
    last_seen = excluded.last_seen, events = incident_alerts.events + excluded.events
"""
_APPEND_TIMELINE = """
INSERT INTO timeline (incident_id, time, kind, message, ref)
VALUES (:incident_id, :time, :kind, :message, :ref)
"""


@dataclass(slots=True)
class IncidentRows:
    """IncidentChanges as plain rows: a snapshot taken on the event loop when the changes are
    made (the incidents change on), written later by the DB thread in order."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

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
            [_incident_row(i) for i in changes.incidents.values()],
            [
                {
                    "incident_id": iid,
                    "fingerprint": text(fp),
                    "status": d.status,
                    "first_seen": d.first_seen,
                    "last_seen": d.last_seen,
                    "events": d.events,
                }
                for (iid, fp), d in changes.alerts.items()
            ],
            [
                {
                    "incident_id": t.incident_id,
                    "time": t.time,
                    "kind": t.kind,
                    "message": text(t.message),
                    "ref": t.ref,
                }
                for t in changes.timeline
            ],
        )

    def write(self, executemany: Callable[[str, list[dict[str, Any]]], object]) -> None:
        """Run the statements through the caller's cursor or connection, in its transaction."""
        for sql, rows in (
            (_UPSERT_INCIDENT, self.incidents),
            (_MERGE_ALERT, self.alerts),
            (_APPEND_TIMELINE, self.timeline),
        ):
            if rows:
                executemany(sql, rows)


def _incident_row(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id, "key": text(i.key), "title": text(i.title), "source": text(i.source),
        "severity": text(i.severity), "status": str(i.status), "opened_at": i.opened_at,
        "updated_at": i.updated_at, "mitigated_at": i.mitigated_at,
        "resolved_at": i.resolved_at, "events": i.events,
    }  # fmt: skip


def incident_from_row(row: sa.RowMapping, alerts: dict[str, str] | None = None) -> Incident:
    return Incident(
        id=row["id"], key=row["key"], title=row["title"], source=row["source"],
        severity=row["severity"], status=IncidentStatus(row["status"]),
        opened_at=row["opened_at"], updated_at=row["updated_at"],
        mitigated_at=row["mitigated_at"], resolved_at=row["resolved_at"], events=row["events"],
        alerts=alerts or {},
    )  # fmt: skip


def load_active(conn: Connection) -> list[Incident]:
    """Open and mitigated incidents with their member alerts: the tracker's state at start."""
    rows = conn.execute(
        sa.select(incidents).where(incidents.c.status != IncidentStatus.RESOLVED.value)
    ).mappings()
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


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One member alert of an incident as stored."""

    fingerprint: str
    status: str
    first_seen: float
    last_seen: float
    events: int


def incident_detail(
    conn: Connection, row: sa.RowMapping
) -> tuple[Incident, list[AlertRow], list[TimelineEntry]]:
    """An incident with its member alerts and its timeline in order."""
    alerts = [
        AlertRow(r["fingerprint"], r["status"], r["first_seen"], r["last_seen"], r["events"])
        for r in conn.execute(
            sa.select(incident_alerts)
            .where(incident_alerts.c.incident_id == row["id"])
            .order_by(incident_alerts.c.first_seen)
        ).mappings()
    ]
    lines = [
        TimelineEntry(r["incident_id"], r["time"], r["kind"], r["message"], r["ref"])
        for r in conn.execute(
            sa.select(timeline)
            .where(timeline.c.incident_id == row["id"])
            .order_by(timeline.c.id)  # the order opsmedic learned things in
        ).mappings()
    ]
    incident = incident_from_row(row, {a.fingerprint: a.status for a in alerts})
    return incident, alerts, lines


def delete_incidents(conn: Connection, ids: Sequence[str]) -> int:
    """Delete resolved incidents (with their alerts and timeline) by id; returns how many."""
    if not ids:
        return 0
    for table in (incident_alerts, timeline):
        conn.execute(sa.delete(table).where(table.c.incident_id.in_(ids)))
    return conn.execute(sa.delete(incidents).where(incidents.c.id.in_(ids))).rowcount
