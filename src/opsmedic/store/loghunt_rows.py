"""The latest log hunt on an incident: its runs' `loghunt` steps, read from the stored runs."""

from __future__ import annotations

import sqlalchemy as sa

from opsmedic.model import Run, RunState, StepRecord
from opsmedic.store.codec import run_from_row
from opsmedic.store.history_rows import Transactions
from opsmedic.store.schema import runs

ACTION = "loghunt"
# Finished runs of one incident that name the action, newest first, looked through at most:
# an incident with more hunts than this shows one of its latest ones all the same.
MAX_RUNS = 50


class LogHuntReads:
    """Reads of stored hunts (Store.loghunts); nothing of the engine's memory."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def latest(self, incident_id: str) -> tuple[Run, StepRecord] | None:
        """The incident's most recently finished run's last succeeded `loghunt` step (a dry
        run read nothing), with its run; None when no run of the incident hunted."""
        # Runs whose steps name the action, judged on the JSON's text (SQLite and PostgreSQL
        # alike), then each step looked at here: a hunt in on_failure steps counts too.
        named = sa.cast(runs.c.steps, sa.Text).contains(f'"{ACTION}"')
        stmt = (
            sa.select(runs)
            .where(
                runs.c.incident_id == incident_id,
                runs.c.dry_run.is_(False),
                runs.c.finished_at.is_not(None),
                named,
            )
            .order_by(runs.c.finished_at.desc(), runs.c.id.desc())
            .limit(MAX_RUNS)
        )
        with self._transaction() as conn:
            found = [run_from_row(r) for r in conn.execute(stmt).mappings()]
        for run in found:
            for step in reversed(run.steps):
                if step.action == ACTION and step.state is RunState.SUCCEEDED:
                    return run, step
        return None
