"""The run listing's filters (`GET /api/v1/runs`, the dashboard's Runs page) and its reads."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy.engine import Connection

from opsmedic.model import Queue, Run, RunState
from opsmedic.store.codec import dumps_json, run_from_row
from opsmedic.store.schema import runs

Transactions = Callable[..., AbstractContextManager[Connection]]


def _moment(value: Any) -> Any:
    """A time as epoch seconds, or an ISO 8601 date-time (UTC when it names no zone)."""
    if not isinstance(value, str):
        return value
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            "not a time: epoch seconds or ISO 8601 (2026-12-07T17:00:00Z, 2026-12-07 17:00)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _no_nul(value: str) -> str:
    # PostgreSQL cannot even compare text with NUL; no stored value holds one anyway.
    if "\x00" in value:
        raise ValueError("a NUL character cannot be in a filter")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("a time must be a finite number")
    return value


Moment = Annotated[float, BeforeValidator(_moment), AfterValidator(_finite)]
Name = Annotated[str, AfterValidator(_no_nul)]


class RunFilter(BaseModel):
    """Which runs a listing shows: each filter given narrows it (all of them hold)."""

    model_config = ConfigDict(frozen=True)

    rule: Name | None = Field(default=None, description="only this rule's runs")
    action: Name | None = Field(default=None, description="only runs whose rule does this action")
    state: RunState | None = Field(default=None, description="only runs in this state")
    target: Name | None = Field(
        default=None, description="only runs on exactly this target (host:resource, host…)"
    )
    host: Name | None = Field(
        default=None, description="only runs on this host: its target is it, or HOST:resource"
    )
    queue: Queue | None = Field(default=None, description="only runs of this queue")
    since: Moment | None = Field(
        default=None, description="created at or after: epoch seconds or ISO 8601 (UTC if no zone)"
    )
    until: Moment | None = Field(default=None, description="created before (as since)")

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        found: list[sa.ColumnElement[bool]] = []
        for column, value in ((runs.c.rule, self.rule), (runs.c.target, self.target),
                              (runs.c.state, self.state), (runs.c.queue, self.queue)):  # fmt: skip
            if value is not None:
                found.append(column == str(value))  # an enum as its text
        if self.host is not None:
            # A run's target is its event's `host:resource` (or the host alone): Event.target.
            prefix = runs.c.target.startswith(f"{self.host}:", autoescape=True)
            found.append(sa.or_(runs.c.target == self.host, prefix))
        if self.action is not None:
            # `actions` is a JSON list of names, written compact by dumps_json: the quoted
            # name is a whole element, on SQLite and PostgreSQL alike.
            listed = sa.cast(runs.c.actions, sa.Text)
            found.append(listed.contains(dumps_json(self.action), autoescape=True))
        if self.since is not None:
            found.append(runs.c.created_at >= self.since)
        if self.until is not None:
            found.append(runs.c.created_at < self.until)
        return found


class RunReads:
    """Runs by a RunFilter, newest first, and how many match (Store.run_reads)."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def find(self, where: RunFilter, limit: int) -> list[Run]:
        with self._transaction() as conn:
            return [run_from_row(row) for row in conn.execute(_newest(where, limit)).mappings()]

    def page(self, where: RunFilter, limit: int, upto: int) -> tuple[list[Run], int]:
        """The newest `limit` runs that match and how many match, counted up to `upto + 1`
        (a count of millions of rows would take longer than the page), read together."""
        matching = sa.select(runs.c.id).where(*where.clauses()).limit(upto + 1).subquery()
        count = sa.select(sa.func.count()).select_from(matching)
        with self._transaction() as conn:
            total = int(conn.execute(count).scalar_one())
            found = conn.execute(_newest(where, limit)).mappings()
            return [run_from_row(row) for row in found], total


def _newest(where: RunFilter, limit: int) -> sa.Select[Any]:
    return (
        sa.select(runs)
        .where(*where.clauses())
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
