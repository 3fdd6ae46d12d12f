"""Deployments as rows: at most one active per service and env, changed only from a known state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.model import JSON, Deployment, DeploymentState
from opsmedic.store.schema import deployments

_ACTIVE = (DeploymentState.STARTED.value, DeploymentState.VERIFYING.value)


def deployment_row(deployment: Deployment) -> dict[str, object]:
    row = asdict(deployment)
    row["state"] = deployment.state.value
    return row


def deployment_from_row(row: sa.RowMapping) -> Deployment:
    values = dict(row)
    values["state"] = DeploymentState(values["state"])
    return Deployment(**values)


def insert(conn: Connection, deployment: Deployment) -> None:
    """Raises IntegrityError when the service and env have an active deployment already."""
    conn.execute(deployments.insert().values(**deployment_row(deployment)))


def active(conn: Connection, service: str, env: str) -> Deployment | None:
    row = conn.execute(
        sa.select(deployments).where(
            deployments.c.service == service, deployments.c.env == env,
            deployments.c.state.in_(_ACTIVE),
        )
    ).mappings().first()  # fmt: skip
    return deployment_from_row(row) if row is not None else None


def update(conn: Connection, deployment: Deployment, expected: Sequence[DeploymentState]) -> bool:
    """Write `deployment` over its row if the row is still in one of `expected` states (and,
    for an active row, still owned by the same process); False when someone else changed it."""
    row = deployment_row(deployment)
    stmt = deployments.update().where(
        deployments.c.id == deployment.id, deployments.c.state.in_([s.value for s in expected])
    )
    if all(not s.finished for s in expected):
        stmt = stmt.where(deployments.c.owner == deployment.owner)
    return conn.execute(stmt.values(**row)).rowcount == 1


def take_over(
    conn: Connection, deployment_id: str, dead_owner: str, owner: str, now: float,
    checks: JSON | None = None,
) -> bool:  # fmt: skip
    """Claim an active deployment from an owner found dead (or beat its heartbeat: `owner`
    for `dead_owner`, with the progress in `checks` when given); False when another process
    won."""
    stmt = (
        deployments.update()
        .where(
            deployments.c.id == deployment_id,
            deployments.c.owner == dead_owner,
            deployments.c.state.in_(_ACTIVE),
        )
        .values(owner=owner, heartbeat_at=now)
    )
    if checks is not None:
        stmt = stmt.values(checks=checks)
    return conn.execute(stmt).rowcount == 1


def listing(
    conn: Connection, service: str | None, env: str | None, states: Sequence[str], limit: int
) -> list[Deployment]:
    """Newest first."""
    stmt = _filtered(sa.select(deployments), service, env, states)
    stmt = stmt.order_by(deployments.c.created_at.desc(), deployments.c.id.desc()).limit(limit)
    return [deployment_from_row(r) for r in conn.execute(stmt).mappings()]


def count(
    conn: Connection, service: str | None, env: str | None, states: Sequence[str] = ()
) -> int:
    """How many `listing` would give without its limit (the dashboard says "N of M")."""
    stmt = sa.select(sa.func.count()).select_from(deployments)
    return int(conn.execute(_filtered(stmt, service, env, states)).scalar_one())


def _filtered(
    stmt: sa.Select[Any], service: str | None, env: str | None, states: Sequence[str]
) -> sa.Select[Any]:
    if service is not None:
        stmt = stmt.where(deployments.c.service == service)
    if env is not None:
        stmt = stmt.where(deployments.c.env == env)
    if states:
        stmt = stmt.where(deployments.c.state.in_(list(states)))
    return stmt


def last_known_good(
    conn: Connection, service: str, env: str, version: str | None, excluding: str
) -> Deployment | None:
    """The newest last-known-good deployment (of `version` if given) other than `excluding`."""
    stmt = sa.select(deployments).where(
        deployments.c.service == service, deployments.c.env == env,
        deployments.c.last_known_good.is_(True), deployments.c.version != excluding,
    )  # fmt: skip
    if version is not None:
        stmt = stmt.where(deployments.c.version == version)
    stmt = stmt.order_by(deployments.c.finished_at.desc(), deployments.c.id.desc()).limit(1)
    row = conn.execute(stmt).mappings().first()
    return deployment_from_row(row) if row is not None else None
