"""The rows of a run by hand: checked against every process's runs, inserted running."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.errors import RunRefused
from opsmedic.model import Event, Run, RunState
from opsmedic.rules.model import LimitSpec, key_of
from opsmedic.store.codec import EncodedEvent, event_from_row, event_row, run_row
from opsmedic.store.schema import events as event_table
from opsmedic.store.schema import runs as run_table

# A run waiting for approval has not finished either: it goes on when someone approves.
_UNFINISHED = (RunState.PLANNED.value, RunState.RUNNING.value, RunState.WAITING_APPROVAL.value)


def start(
    conn: Connection, event: EncodedEvent, run: Run, limit: LimitSpec | None,
    owned: dict[str, object],
) -> None:  # fmt: skip
    """Insert the run's event and the run (already `running`, with the `owned` columns of
    store/run_owner.py stamp) in the caller's write
    transaction, unless the store holds a run of the rule for the same alert that has not
    finished, or the rule's `limit` is reached by the runs the store counts: those of every
    process, the live service's and other runs by hand alike. A dry run is not checked: it
    acts on nothing. Raises RunRefused."""
    if conn.dialect.name == "postgresql":
        # Two runs by hand of one rule take turns here (SQLite's BEGIN IMMEDIATE already
        # serialises every writer), so both cannot pass the checks before either inserts.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(run.rule)})
    if not run.dry_run:
        busy = conn.execute(
            sa.select(run_table.c.id, run_table.c.state)
            .where(run_table.c.rule == run.rule, run_table.c.fingerprint == run.fingerprint,
                   run_table.c.state.in_(_UNFINISHED))
            .limit(1)
        ).first()  # fmt: skip
        if busy is not None:
            raise RunRefused(
                f"run {busy.id} of {run.rule} for this alert ({run.target}) is {busy.state}; "
                "a run left running by a process that died is marked interrupted when "
                "`opsmedic run` starts"
            )
        if limit is not None and _counted(conn, run.rule, event.event, limit) >= limit.max_runs:
            key = "/".join(key_of(event.event, limit.per))
            raise RunRefused(
                f"limit reached: {limit.max_runs} runs within {limit.within:g}s for {key}"
            )
    conn.execute(event_table.insert(), [event_row(event)])
    conn.execute(run_table.insert(), [{**run_row(run), **owned}])


def _counted(conn: Connection, rule: str, event: Event, limit: LimitSpec) -> int:
    """The rule's runs within the limit's window whose events share `event`'s limit key."""
    rows = conn.execute(
        sa.select(event_table)
        .join(run_table, run_table.c.event_id == event_table.c.id)
        .where(run_table.c.rule == rule, run_table.c.created_at > event.time - limit.within,
               run_table.c.state != RunState.SKIPPED.value)
    ).mappings()  # fmt: skip
    key = key_of(event, limit.per)
    return sum(key_of(event_from_row(row), limit.per) == key for row in rows)


def _lock_key(rule: str) -> int:
    """A signed 64-bit advisory lock key for runs by hand of `rule`."""
    digest = hashlib.blake2b(f"opsmedic manual {rule}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
