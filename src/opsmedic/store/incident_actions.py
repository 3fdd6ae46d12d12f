"""People's actions on incidents (lifecycle.py), one locked transaction each, and the incidents
they changed, for the engine to catch up with."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic import lifecycle
from opsmedic.errors import IncidentRefused
from opsmedic.lifecycle import Action
from opsmedic.model import Incident, IncidentStatus, TimelineEntry
from opsmedic.store.incident_rows import incident_from_row, with_alerts
from opsmedic.store.schema import incidents, timeline
from opsmedic.utf8 import text

_ACTIVE = (IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value,
           IncidentStatus.MITIGATED.value)  # fmt: skip


def apply_action(
    conn: Connection, incident_id: str, action: Action, who: str, at: float, note: str = ""
) -> tuple[Incident, TimelineEntry]:
    """Apply `action` to the incident and append its line, in the caller's write transaction.

    The row is read FOR UPDATE on PostgreSQL (SQLite's write transactions are exclusive
    already), so two people acting at once take turns and the second sees the first's state:
    two acknowledgements make one line and a 409, never two lines.
    """
    row = conn.execute(
        sa.select(incidents).where(incidents.c.id == incident_id).with_for_update()
    ).mappings().one()  # fmt: skip
    incident = incident_from_row(row)
    line = lifecycle.act(incident, action, text(who), at, text(note))  # refused: nothing written
    if action is Action.REOPEN:
        _check_key_free(conn, incident)
    conn.execute(
        sa.update(incidents)
        .where(incidents.c.id == incident.id)
        .values(
            status=incident.status.value, updated_at=incident.updated_at,
            resolved_at=incident.resolved_at, acknowledged_at=incident.acknowledged_at,
            acknowledged_by=incident.acknowledged_by, assignee=incident.assignee,
            closed_at=incident.closed_at, human_actions=incident.human_actions,
            human_at=incident.human_at,
        )
    )  # fmt: skip
    conn.execute(
        timeline.insert().values(
            incident_id=line.incident_id, time=line.time, kind=line.kind,
            message=text(line.message), ref=line.ref,
        )
    )  # fmt: skip
    return incident, line


def _check_key_free(conn: Connection, incident: Incident) -> None:
    """A reopened incident takes its grouping key back: refused while another holds it."""
    other = conn.execute(
        sa.select(incidents.c.id).where(
            incidents.c.key == incident.key,
            incidents.c.id != incident.id,
            incidents.c.status.in_(_ACTIVE),
        )
    ).scalar()  # fmt: skip
    if other is not None:
        raise IncidentRefused(
            f"cannot reopen it: incident {other} is {_status(conn, other)} for the same alerts "
            "(act on that one)"
        )


def _status(conn: Connection, incident_id: str) -> str:
    return str(conn.execute(sa.select(incidents.c.status).where(incidents.c.id == incident_id))
               .scalar_one())  # fmt: skip


def changed_since(conn: Connection, since: float) -> list[Incident]:
    """Incidents people acted on at or after `since`, with their member alerts."""
    return with_alerts(conn, sa.select(incidents).where(incidents.c.human_at >= since))


def by_id(conn: Connection, ids: Sequence[str]) -> list[Incident]:
    """The incidents of these ids, with their member alerts."""
    return with_alerts(conn, sa.select(incidents).where(incidents.c.id.in_(list(ids))))
