"""Approvals as rows: a run parked before a step, and the one decision that ends its wait."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.errors import AmbiguousRef, ApprovalConflict, NotFoundError, UnknownRun
from opsmedic.model import Approval, Run, RunState
from opsmedic.store.codec import run_from_row, run_row
from opsmedic.store.flag_rows import Transactions
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.schema import approvals, runs, timeline
from opsmedic.utf8 import text

APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"
_WAITING = RunState.WAITING_APPROVAL.value


Find = Callable[[Connection, sa.Table, str, str], sa.RowMapping]


class ApprovalTable:
    """Runs' waits for approval (Store.approvals). A wait is bound to its run and step; its
    decision is taken once, by a conditional update, so that of concurrent deciders (an
    approve, a reject, the engine's timeout, in any processes) exactly one wins."""

    def __init__(
        self, transaction: Transactions, find: Find, owned: Callable[[], dict[str, object]]
    ) -> None:
        """`owned`: the owner columns a resumed run gets (store/run_owner.py stamp)."""
        self._transaction, self._find, self._owned = transaction, find, owned

    def wait(self, run: Run, approval: Approval, incidents: IncidentRows) -> bool:
        """Park a running run before `approval.step`: its steps so far and its state, the wait
        and the incident's lines, in one transaction; False (nothing written) when the run is
        not running any more."""
        row = run_row(run)
        park = (
            sa.update(runs)
            .where(runs.c.id == run.id, runs.c.state == RunState.RUNNING.value)
            .values(state=_WAITING, message=row["message"], steps=row["steps"])
        )
        with self._transaction(write=True) as conn:
            if conn.execute(park).rowcount != 1:
                return False
            conn.execute(approvals.insert().values(**_row(approval)))
            if incidents:
                incidents.write(conn)
        return True

    def decide(
        self, ref: str, decision: str, by: str, comment: str, now: float, step: int | None = None
    ) -> Approval:
        """Decide the wait run `ref` is in (`step`: only if it waits before that step). Raises
        UnknownRun, or ApprovalConflict when the run waits for nothing (or for another step),
        someone decided first, or (a person's decision) the deadline passed; the decision and
        its timeline line commit together."""
        with self._transaction(write=True) as conn:
            try:
                found = self._find(conn, runs, ref, "run")
            except AmbiguousRef:
                raise  # a short id several share: a 409 that names them
            except NotFoundError as exc:
                raise UnknownRun(str(exc)) from None
            wait = _latest(conn, found["id"])
            if found["state"] != _WAITING or wait is None or wait.decision:
                raise ApprovalConflict(_not_waiting(found["id"], found["state"], wait))
            if step is not None and step != wait.step:
                raise ApprovalConflict(
                    f"run {wait.run_id} waits for approval of step {wait.step + 1} "
                    f"({wait.action}), not step {step + 1}; nothing changed"
                )
            person = decision != TIMED_OUT
            if person and step is None and wait.step > 0 and _decided_before(conn, wait):
                # `runs approve RUN` run again (a shell's history, a retried script) would
                # approve the run's next wait, which nobody read: that one must be named.
                raise ApprovalConflict(
                    f"name the step: run {wait.run_id} had a wait decided already and now "
                    f"waits for approval of step {wait.step + 1} ({wait.action}); decide it "
                    f'with --step {wait.step + 1} (API: "step": {wait.step + 1}); '
                    "nothing changed"
                )
            # A person's yes or no counts only before the deadline: after it, the wait's
            # on_timeout decides (the engine's timeout may not have run yet, or the service
            # may be down), so a late approval cannot run a step on_timeout: skip would not.
            # The timeout, in turn, decides only a wait whose deadline passed (not a later
            # wait of the same run another engine parked meanwhile).
            in_time = approvals.c.deadline > now if person else approvals.c.deadline <= now
            won = conn.execute(
                sa.update(approvals)
                .where(
                    approvals.c.run_id == wait.run_id,
                    approvals.c.step == wait.step,
                    approvals.c.decision.is_(None),
                    in_time,
                )
                .values(
                    decision=decision, decided_by=text(by), decided_at=now, comment=text(comment)
                )
            ).rowcount
            if won != 1:  # the deadline passed, or another decider committed since the read
                now_wait = _latest(conn, wait.run_id)
                if person and now_wait is not None and not now_wait.decision:
                    raise ApprovalConflict(_timed_out(now_wait))
                raise ApprovalConflict(_not_waiting(wait.run_id, _WAITING, now_wait))
            wait.decision, wait.decided_by, wait.decided_at = decision, by, now
            wait.comment = comment
            if wait.incident_id:
                conn.execute(timeline.insert().values(
                    incident_id=wait.incident_id, time=now, kind="approval_decided",
                    message=text(describe(wait)), ref=wait.run_id,
                ))  # fmt: skip
        return wait

    def resume(self, run_id: str) -> Run | None:
        """Take a decided run out of its wait (waiting_approval → running): the claim that
        lets one engine, once, go on with it; None when it is not waiting any more."""
        stmt = (
            sa.update(runs)
            .where(runs.c.id == run_id, runs.c.state == _WAITING)
            .values(state=RunState.RUNNING.value, **self._owned())
            .returning(*runs.c)
        )
        with self._transaction(write=True) as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else run_from_row(row)

    def waits(self, run_ids: Sequence[str] | None = None) -> list[Approval]:
        """The current wait of each run in waiting_approval (of `run_ids`, when given)."""
        stmt = (
            sa.select(approvals)
            .join(runs, runs.c.id == approvals.c.run_id)
            .where(runs.c.state == _WAITING)
            .order_by(approvals.c.run_id, approvals.c.step)
        )
        if run_ids is not None:
            stmt = stmt.where(approvals.c.run_id.in_(list(run_ids)))
        latest: dict[str, Approval] = {}
        with self._transaction() as conn:
            for row in conn.execute(stmt).mappings():
                latest[row["run_id"]] = _approval(row)  # ordered by step: the last one stays
        return list(latest.values())

    def decided(self, limit: int) -> list[Approval]:
        """The latest decisions (a person's or the timeout's), newest first."""
        stmt = (
            sa.select(approvals)
            .where(approvals.c.decision.is_not(None))
            .order_by(approvals.c.decided_at.desc(), approvals.c.run_id)
            .limit(limit)
        )
        with self._transaction() as conn:
            return [_approval(row) for row in conn.execute(stmt).mappings()]

    def prune(self) -> int:
        """Delete the waits whose run is gone (Store.prune deleted it)."""
        orphan = ~sa.select(runs.c.id).where(runs.c.id == approvals.c.run_id).exists()
        with self._transaction(write=True) as conn:
            deleted: int = conn.execute(sa.delete(approvals).where(orphan)).rowcount
        return deleted

    def of_run(self, run_id: str) -> list[Approval]:
        """Every wait of one run and its decision, by step."""
        stmt = sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.step)
        with self._transaction() as conn:
            return [_approval(row) for row in conn.execute(stmt).mappings()]


def describe(wait: Approval) -> str:
    """One line for the timeline and the log: the step, the decision, by whom, why."""
    said = f": {wait.comment}" if wait.comment else ""
    decision = wait.decision.replace("_", " ")
    return f"step {wait.step + 1} ({wait.action}) {decision} by {wait.decided_by}{said}"


def _not_waiting(run_id: str, state: str, wait: Approval | None) -> str:
    """Why a decision finds nothing to decide, naming the decision that came first."""
    decided = ""
    if wait is not None and wait.decision:
        at = datetime.fromtimestamp(wait.decided_at or 0.0, UTC).strftime("%Y-%m-%d %H:%M:%S")
        decided = f"{describe(wait)} at {at} UTC already"
    if state == _WAITING:  # the wait it was in was decided just before this one
        return f"run {run_id}: {decided}; nothing changed"
    why = f" ({decided})" if decided else ""
    return f"run {run_id} is {state}, not waiting for approval{why}; nothing changed"


def _timed_out(wait: Approval) -> str:
    at = datetime.fromtimestamp(wait.deadline, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"run {wait.run_id}: the wait timed out at {at} UTC; its on_timeout "
        f"({wait.on_timeout}) decides; nothing changed"
    )


def _decided_before(conn: Connection, wait: Approval) -> bool:
    """Whether the run had a wait before `wait` (each one decided: the run went on)."""
    earlier = sa.select(approvals.c.step).where(
        approvals.c.run_id == wait.run_id, approvals.c.step < wait.step
    )
    return conn.execute(earlier.limit(1)).first() is not None


def _latest(conn: Connection, run_id: str) -> Approval | None:
    stmt = (
        sa.select(approvals)
        .where(approvals.c.run_id == run_id)
        .order_by(approvals.c.step.desc())
        .limit(1)
    )
    row = conn.execute(stmt).mappings().first()
    return None if row is None else _approval(row)


def _row(a: Approval) -> dict[str, object]:
    return {
        "run_id": a.run_id, "step": a.step, "action": a.action, "requested_at": a.requested_at,
        "deadline": a.deadline, "on_timeout": a.on_timeout, "incident_id": a.incident_id,
        "decision": a.decision or None, "decided_by": text(a.decided_by),
        "decided_at": a.decided_at, "comment": text(a.comment), "digest": a.digest or None,
    }  # fmt: skip


def _approval(row: sa.RowMapping) -> Approval:
    return Approval(
        run_id=row["run_id"], step=row["step"], action=row["action"],
        requested_at=row["requested_at"], deadline=row["deadline"],
        on_timeout=row["on_timeout"], incident_id=row["incident_id"],
        decision=row["decision"] or "", decided_by=row["decided_by"],
        decided_at=row["decided_at"], comment=row["comment"], digest=row["digest"] or "",
    )  # fmt: skip
