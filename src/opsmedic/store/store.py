"""The Store: the single source of truth (events, runs, incidents, tokens, cursors), on SQLite
or PostgreSQL; it turns domain objects into rows and back."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.errors import (
    AmbiguousRef,
    NotFoundError,
    ReleaseRefused,
    StoreError,
    UnknownIncident,
)
from opsmedic.lifecycle import Action
from opsmedic.model import (
    JSON,
    OWN_SOURCE,
    Deployment,
    DeploymentState,
    Event,
    Incident,
    IncidentAlert,
    IncidentStatus,
    Queue,
    Run,
    RunState,
    TimelineEntry,
    TokenRecord,
)
from opsmedic.rules.model import LimitSpec
from opsmedic.store import deployment_rows, incident_rows, manual_rows, sqlite_writes, token_rows
from opsmedic.store import migrate as migrations
from opsmedic.store.approval_rows import ApprovalTable
from opsmedic.store.codec import EncodedEvent, event_from_row, event_row, run_from_row, run_row
from opsmedic.store.database import WRITE, describe, make_engine, parse_url, shown, store_error
from opsmedic.store.decision_rows import DecisionRows, SuppressedTable
from opsmedic.store.flag_rows import FlagTable
from opsmedic.store.history_rows import HistoryReads
from opsmedic.store.incident_actions import apply_action, by_id, changed_since
from opsmedic.store.incident_rows import IncidentRows
from opsmedic.store.loghunt_rows import LogHuntReads
from opsmedic.store.now_rows import NowReads
from opsmedic.store.report_rows import ReportReads
from opsmedic.store.run_owner import RunOwner, lapsed, renew, stamp
from opsmedic.store.run_query import RunFilter, RunReads
from opsmedic.store.schema import deployments as deployment_table
from opsmedic.store.schema import events as event_table
from opsmedic.store.schema import incidents as incident_table
from opsmedic.store.schema import runs as run_table
from opsmedic.store.silence_rows import SilenceTable
from opsmedic.store.slo_rows import SloSampleTable

INTERRUPTED_MESSAGE = "interrupted: opsmedic stopped while this run was running"
MIN_REF = 4  # shortest id prefix or suffix accepted by get_run / get_event
CLAIM_CHUNK = 1000  # ids per statement, far below SQLite's and PostgreSQL's parameter limits
PRUNE_BATCH = 5000  # rows deleted per transaction by prune()

_UNFINISHED = (RunState.PLANNED.value, RunState.RUNNING.value)

# Built once: the hot-path statements then hit SQLAlchemy's compiled cache every time.
_CLAIM = (
    sa.update(run_table)
    .where(
        run_table.c.id.in_(sa.bindparam("ids", expanding=True)),
        run_table.c.state == RunState.PLANNED.value,
    )
    .values(
        state=RunState.RUNNING.value,
        started_at=sa.bindparam("started_at"),
        owner=sa.bindparam("owner"),
        lease_until=sa.bindparam("lease_until"),
    )
    .returning(run_table.c.id)
)
_FINISH = (
    sa.update(run_table)
    .where(
        run_table.c.id == sa.bindparam("b_id"),
        # Not IN (...): an expanding parameter cannot be used with executemany.
        sa.or_(run_table.c.state == _UNFINISHED[0], run_table.c.state == _UNFINISHED[1]),
    )
    .values(
        state=sa.bindparam("b_state"),
        message=sa.bindparam("b_message"),
        steps=sa.bindparam("b_steps", type_=run_table.c.steps.type),
        finished_at=sa.bindparam("b_finished_at"),
    )
)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What start-up recovery did: the runs marked interrupted, the re-runs it claimed."""

    interrupted: list[Run]
    reruns: list[Run]


@dataclass(frozen=True, slots=True)
class PruneResult:
    """How many rows prune() deleted."""

    events: int
    runs: int
    incidents: int = 0
    suppressed: int = 0
    silences: int = 0
    slo_minutes: int = 0


def _check_final(runs: Sequence[Run]) -> None:
    unfinal = [r.id for r in runs if not r.state.finished]
    if unfinal:
        raise ValueError(f"finish() needs final states; not final: {', '.join(unfinal)}")


def _finish_params(run: Run) -> dict[str, object]:
    row = run_row(run)
    return {
        "b_id": row["id"],
        "b_state": row["state"],
        "b_message": row["message"],
        "b_steps": row["steps"],
        "b_finished_at": row["finished_at"],
    }


class Store:
    """Sync access to the store; the engine calls it from one thread and batches its work."""

    def __init__(self, url: str) -> None:
        self._url = parse_url(url)
        self._engine = make_engine(self._url)
        self._sqlite = self._url.get_backend_name() == "sqlite"
        # The engine whose runs this process claims (engine/leases.py): None, unowned.
        self.owner: RunOwner | None = None

    @property
    def local(self) -> bool:
        """SQLite: a write is local CPU and disk work, not a wait on a server."""
        return self._sqlite

    @property
    def url(self) -> str:
        """The normalised URL with its password masked: safe to print and log."""
        return shown(self._url)

    def migrate(self, *, create: bool = True) -> None:
        """Create or upgrade the schema to the newest revision; cheap when already there.

        With `create=False` (the CLI's read commands) a store that does not exist yet, or
        holds no opsmedic schema, is a StoreError: reading must not leave an empty one behind.
        """
        database = self._url.database or ""
        on_disk = self._url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        if not create:
            # Checked before any connection: connecting to SQLite creates the file.
            if on_disk and not Path(database).exists():
                raise StoreError(f"store {self.url}: no database at {database}")
            with self._transaction() as conn:
                if not migrations.has_schema(conn):
                    raise StoreError(f"store {self.url}: holds no opsmedic tables yet")
        if on_disk:
            directory = Path(database).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(
                    f"store {self.url}: cannot create {directory}: {e.strerror}"
                ) from e
        # The usual case, every start but the first: already at the head. A pure read outside
        # the migration lock; Alembic (≈120 ms and ≈10 MiB to import) runs only when needed,
        # and then under the lock, where it reads the version again itself.
        with self._transaction() as conn:
            if migrations.at_head(conn):
                return
        with self._transaction(write=True) as conn:
            migrations.upgrade(conn)

    def record(
        self,
        events: Sequence[Event | EncodedEvent],
        runs: Sequence[Run],
        claim: Sequence[str] = (),
        started_at: float = 0.0,
        finished: Sequence[Run] = (),
        incidents: IncidentRows | None = None,
        decisions: DecisionRows | None = None,
    ) -> list[str]:
        """One transaction: insert events and their runs, claim runs, write finished runs.

        `claim` names planned runs to claim in the same transaction (the engine runs what it
        just planned: one commit, not two, between an event and its action); `finished` runs
        get their final state as `finish()` writes it; `incidents` are the incident changes
        those events and runs made, `decisions` their suppressed decisions. Returns the claimed ids.
        """
        if not (events or runs or claim or finished or incidents or decisions):
            return []
        _check_final(finished)
        if self._sqlite:
            return self._sqlite_write(
                events, runs, claim, started_at, finished, incidents, decisions
            )
        with self._transaction(write=True) as conn:
            # Events first: runs reference them.
            if events:
                conn.execute(event_table.insert(), [event_row(e) for e in events])
            if runs:
                conn.execute(run_table.insert(), [run_row(r) for r in runs])
            claimed = self._claim(conn, claim, started_at)
            if finished:
                conn.execute(_FINISH, [_finish_params(r) for r in finished])
            if incidents:
                incidents.write(conn)
            if decisions:
                decisions.write(conn)
            return claimed

    def _sqlite_write(
        self,
        events: Sequence[Event | EncodedEvent],
        runs: Sequence[Run],
        claim: Sequence[str],
        started_at: float,
        finished: Sequence[Run],
        incidents: IncidentRows | None,
        decisions: DecisionRows | None = None,
    ) -> list[str]:
        """The hot path on SQLite: a pooled sqlite3 connection and an explicit BEGIN IMMEDIATE,
        without SQLAlchemy's per-transaction machinery (half of a small commit's cost)."""
        try:
            raw = self._engine.raw_connection()
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(describe(self._url, e)) from e
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                won = sqlite_writes.write(
                    cursor, events, runs, claim, started_at, finished, stamp(self.owner)
                )
                if incidents:
                    incidents.write_sqlite(cursor)
                if decisions:
                    decisions.write_sqlite(cursor)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            return won
        except (sqlite3.Error, UnicodeError, OverflowError) as e:
            raise store_error(self._url, e) from e
        finally:
            raw.close()  # back to the pool

    def start_manual(self, event: EncodedEvent, run: Run, limit: LimitSpec | None) -> None:
        """Record a run by hand and its event, checked against every process's runs."""
        with self._transaction(write=True) as conn:
            manual_rows.start(conn, event, run, limit, stamp(self.owner))

    def claim(self, run_ids: Sequence[str], started_at: float) -> list[str]:
        """Move planned runs to running; returns the ids this call won, in the order given."""
        if not run_ids:
            return []
        with self._transaction(write=True) as conn:
            return self._claim(conn, run_ids, started_at)

    def _claim(self, conn: Connection, run_ids: Sequence[str], started_at: float) -> list[str]:
        """The conditional update that makes a claim exclusive, on SQLite and PostgreSQL."""
        wanted = list(dict.fromkeys(run_ids))
        won: set[str] = set()
        owned = stamp(self.owner)
        for i in range(0, len(wanted), CLAIM_CHUNK):
            chunk = {"ids": wanted[i : i + CLAIM_CHUNK], "started_at": started_at, **owned}
            won.update(conn.execute(_CLAIM, chunk).scalars())
        return [run_id for run_id in wanted if run_id in won]

    def finish(self, runs: Sequence[Run]) -> None:
        """Write the final state, message, steps and finish time of each run; a run that is
        already finished in the store keeps what it has."""
        if runs:
            self.record((), (), finished=runs)

    def checkpoint(self) -> None:
        """Copy SQLite's WAL into the database without blocking writers (PASSIVE); a no-op on
        PostgreSQL. The engine calls it from a thread of its own, off the write path."""
        if self._url.get_backend_name() != "sqlite":
            return
        try:
            # Outside any transaction: a checkpoint cannot pass an open read snapshot.
            raw = self._engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                raw.close()
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(describe(self._url, e)) from e

    def interrupt_running(
        self, now: float, rerun: Callable[[Run], Run | None] | None = None,
        ended: Callable[[list[Run]], IncidentRows] | None = None,
    ) -> Recovery:  # fmt: skip
        """Crash recovery at start-up, as one transaction: every run left running by an
        engine that is gone (store/run_owner.py `lapsed`: never a live one's) becomes
        interrupted, with the incident rows `ended` makes of them (evidence lines), and the
        re-run that `rerun` plans for one (None: none) is inserted already claimed (running,
        started `now`, owned by `self.owner`).

        One transaction, because a crash between marking and re-running (two commits) left
        runs `interrupted` that no later start looked at again: now a crash leaves both or
        neither, and a re-run that a crash stops in its turn is itself interrupted and re-run.
        """
        with self._transaction(write=True) as conn:
            stmt = (
                sa.update(run_table)
                .where(run_table.c.state == RunState.RUNNING.value,
                       lapsed(conn, self.owner, now))
                .values(state=RunState.INTERRUPTED.value, message=INTERRUPTED_MESSAGE,
                        finished_at=now)
                .returning(*run_table.c)
            )  # fmt: skip
            found = [run_from_row(row) for row in conn.execute(stmt).mappings()]
            found.sort(key=lambda r: (r.created_at, r.id))
            if ended is not None and found:
                ended(found).write(conn)
            reruns = [run for run in map(rerun, found) if run is not None] if rerun else []
            for run in reruns:
                run.state, run.started_at = RunState.RUNNING, now
            if reruns:
                owned = stamp(self.owner)
                conn.execute(run_table.insert(), [{**run_row(r), **owned} for r in reruns])
        return Recovery(found, reruns)

    def renew_leases(self) -> int:
        """Extend this process's engine's lease on its running runs; how many it holds."""
        if self.owner is None:
            return 0
        with self._transaction(write=True) as conn:
            return renew(conn, self.owner)

    def get_run(self, ref: str) -> Run:
        """The run whose id is `ref`, or starts or ends with it (at least 4 characters)."""
        with self._transaction() as conn:
            return run_from_row(self._find(conn, run_table, ref, "run"))

    def list_runs(
        self,
        *,
        rule: str | None = None,
        since: float | None = None,
        state: RunState | None = None,
        limit: int = 100,
        queue: str | None = None,
    ) -> list[Run]:
        """Runs, newest first (run_reads for every filter and a count)."""
        where = RunFilter(
            rule=rule, since=since, state=state, queue=None if queue is None else Queue(queue)
        )
        return self.run_reads.find(where, limit)

    def get_event(self, ref: str) -> Event:
        """The event whose id is `ref`, or starts or ends with it (at least 4 characters)."""
        with self._transaction() as conn:
            return event_from_row(self._find(conn, event_table, ref, "event"))

    def stored_event_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of `ids` the store already holds (replay skips those, naming their lines)."""
        stmt = sa.select(event_table.c.id).where(event_table.c.id.in_(list(ids)))
        with self._transaction() as conn:
            return set(conn.execute(stmt).scalars())

    def list_events(
        self,
        *,
        since: float | None = None,
        source: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        not_source: str | None = None,
    ) -> list[Event]:
        """Events, newest first; `not_source` leaves out the events of that source."""
        stmt = (
            sa.select(event_table)
            .order_by(event_table.c.time.desc(), event_table.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            stmt = stmt.where(event_table.c.time >= since)
        if source is not None:
            stmt = stmt.where(event_table.c.source == source)
        if kind is not None:
            stmt = stmt.where(event_table.c.kind == kind)
        if not_source is not None:
            stmt = stmt.where(event_table.c.source != not_source)
        with self._transaction() as conn:
            return [event_from_row(row) for row in conn.execute(stmt).mappings()]

    def active_incidents(self, resolved_since: float | None = None) -> list[Incident]:
        """Open and mitigated incidents with their member alerts (the engine's start); with
        `resolved_since`, also the incidents resolved since then."""
        with self._transaction() as conn:
            return incident_rows.load_active(conn, resolved_since)

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents, newest first."""
        with self._transaction() as conn:
            return incident_rows.list_incidents(conn, status=status, since=since, limit=limit)

    def get_incident(self, ref: str) -> tuple[Incident, list[IncidentAlert], list[TimelineEntry]]:
        """An incident (id, or its start or end) with its member alerts and timeline."""
        with self._transaction() as conn:
            return incident_rows.incident_detail(
                conn, self._find(conn, incident_table, ref, "incident")
            )

    def incident_action(
        self, ref: str, action: Action, who: str, at: float, note: str = ""
    ) -> tuple[Incident, TimelineEntry]:
        """A person's action on an incident (store/incident_actions.py), in one transaction."""
        with self._transaction(write=True) as conn:
            try:
                row = self._find(conn, incident_table, ref, "incident")
            except AmbiguousRef:
                raise  # a short id several share: a 409 that names them
            except NotFoundError as exc:
                raise UnknownIncident(str(exc)) from None
            return apply_action(conn, row["id"], action, who, at, note)

    def incidents_acted_on(self, since: float) -> list[Incident]:
        """Incidents people acted on at or after `since` (the engine catches up with them)."""
        with self._transaction() as conn:
            return changed_since(conn, since)

    def incidents_by_id(self, ids: Sequence[str]) -> list[Incident]:
        """These incidents as they are now, with their member alerts (after IncidentMoved)."""
        with self._transaction() as conn:
            return by_id(conn, ids)

    def add_token(self, record: TokenRecord, digest: str) -> None:
        """Store a new token by the hash of its secret; a name in use is a ValueError."""
        with self._transaction(write=True) as conn:
            token_rows.insert_token(conn, record, digest)

    def find_token(self, digest: str) -> TokenRecord | None:
        """The active token whose secret hashes to `digest`."""
        with self._transaction() as conn:
            return token_rows.token_by_hash(conn, digest)

    def revoke_token(self, name_or_id: str, now: float) -> TokenRecord:
        with self._transaction(write=True) as conn:
            return token_rows.revoke_token(conn, name_or_id, now)

    def list_tokens(self) -> list[TokenRecord]:
        with self._transaction() as conn:
            return token_rows.list_tokens(conn)

    def start_deployment(self, deployment: Deployment) -> None:
        """Record a new deployment; ReleaseRefused, naming the running one, when its service
        and env have an active deployment already (decided by a unique index, atomically)."""
        try:
            with self._transaction(write=True) as conn:
                deployment_rows.insert(conn, deployment)
        except StoreError as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            with self._transaction() as conn:
                running = deployment_rows.active(conn, deployment.service, deployment.env)
            held = f" ({running.version}, {running.id}, by {running.owner})" if running else ""
            raise ReleaseRefused(
                f"{deployment.service} in {deployment.env}: a deployment is running{held}; "
                "wait for it or roll it back"
            ) from None

    def update_deployment(
        self, deployment: Deployment, expected: Sequence[DeploymentState]
    ) -> bool:
        """Write a deployment's new state if its row is still in one of `expected`."""
        with self._transaction(write=True) as conn:
            return deployment_rows.update(conn, deployment, expected)

    def deployment_heartbeat(
        self, deployment_id: str, owner: str, now: float, checks: JSON | None = None
    ) -> bool:
        """Beat; with `checks`, the analysis so far (a canary's weights) is kept for readers."""
        with self._transaction(write=True) as conn:
            return deployment_rows.take_over(conn, deployment_id, owner, owner, now, checks)

    def take_over_deployment(self, deployment_id: str, dead: str, owner: str, now: float) -> bool:
        with self._transaction(write=True) as conn:
            return deployment_rows.take_over(conn, deployment_id, dead, owner, now)

    def list_deployments(
        self, service: str | None = None, env: str | None = None, *,
        states: Sequence[str] = (), limit: int = 100,
    ) -> list[Deployment]:  # fmt: skip
        """Newest first."""
        with self._transaction() as conn:
            return deployment_rows.listing(conn, service, env, states, limit)

    def count_deployments(
        self, service: str | None = None, env: str | None = None, states: Sequence[str] = ()
    ) -> int:
        with self._transaction() as conn:
            return deployment_rows.count(conn, service, env, states)

    def get_deployment(self, ref: str) -> Deployment:
        with self._transaction() as conn:
            found = self._find(conn, deployment_table, ref, "deployment")
            return deployment_rows.deployment_from_row(found)

    def last_known_good(
        self, service: str, env: str, *, version: str | None = None, excluding: str = ""
    ) -> Deployment | None:
        with self._transaction() as conn:
            return deployment_rows.last_known_good(conn, service, env, version, excluding)

    @property
    def history(self) -> HistoryReads:
        """An alert's and a rule's past, for `explain` (store/history_rows.py)."""
        return HistoryReads(self._transaction)

    @property
    def run_reads(self) -> RunReads:
        """Runs by every filter of a listing, and how many match (store/run_query.py)."""
        return RunReads(self._transaction)

    @property
    def loghunts(self) -> LogHuntReads:
        """The latest log hunt on an incident (store/loghunt_rows.py)."""
        return LogHuntReads(self._transaction)

    @property
    def now(self) -> NowReads:
        """The Now page's reads (store/now_rows.py)."""
        return NowReads(self._transaction)

    @property
    def suppressed(self) -> SuppressedTable:
        """The suppressed decisions (store/decision_rows.py)."""
        return SuppressedTable(self._transaction)

    @property
    def flags(self) -> FlagTable:
        """The feature flags and their history (store/flag_rows.py)."""
        return FlagTable(self._transaction)

    @property
    def approvals(self) -> ApprovalTable:
        """Runs' waits for approval and their decisions (store/approval_rows.py)."""
        return ApprovalTable(self._transaction, self._find, lambda: stamp(self.owner))

    @property
    def reports(self) -> ReportReads:
        """The reports' reads and post-mortem drafts (store/report_rows.py)."""
        return ReportReads(self._transaction, self._find)

    @property
    def silences(self) -> SilenceTable:
        """Silences (store/silence_rows.py)."""
        return SilenceTable(self._transaction, self._find)

    @property
    def slo_samples(self) -> SloSampleTable:
        """Per-minute SLI samples (store/slo_rows.py)."""
        return SloSampleTable(self._transaction)

    def load_cursor(self, name: str) -> str | None:
        """Where poller `name` stopped reading, if it ever read."""
        with self._transaction() as conn:
            return token_rows.load_cursor(conn, name)

    def save_cursor(self, name: str, value: str, now: float) -> None:
        with self._transaction(write=True) as conn:
            token_rows.save_cursor(conn, name, value, now)

    def recent_runs(self, since: float) -> list[tuple[str, str, float, Event]]:
        """(rule, target, created_at, event) of the runs created since `since` that were not
        skipped, oldest first: what the engine needs to rebuild its limit windows (the event,
        for a limit `per` its labels or fields)."""
        stmt = (
            sa.select(run_table.c.rule, run_table.c.target, run_table.c.created_at, event_table)
            .join(event_table, event_table.c.id == run_table.c.event_id)
            .where(run_table.c.created_at >= since, run_table.c.state != RunState.SKIPPED.value)
            .order_by(run_table.c.created_at, run_table.c.id)
        )
        with self._transaction() as conn:
            return [
                (row["rule"], row["target"], row["created_at"], event_from_row(row))
                for row in conn.execute(stmt).mappings()
            ]

    def recent_fired(self, since: float) -> list[tuple[str, Event]]:
        """(rule, event) of the runs created since `since` that were not skipped, oldest
        first: what the engine needs to rebuild its throttles after a restart."""
        stmt = (
            sa.select(run_table.c.rule, event_table)
            .join(event_table, event_table.c.id == run_table.c.event_id)
            # A run by hand sets no throttle (engine/manual.py).
            .where(
                run_table.c.created_at >= since,
                run_table.c.state != RunState.SKIPPED.value,
                run_table.c.started_by == "",
            )
            .order_by(run_table.c.created_at, run_table.c.id)
        )
        with self._transaction() as conn:
            return [(row["rule"], event_from_row(row)) for row in conn.execute(stmt).mappings()]

    def escalations(self, since: float) -> list[Event]:
        """The limit escalations the engine emitted since `since`, oldest first: what it needs
        to escalate only once per limit pause across a restart."""
        stmt = (
            sa.select(event_table)
            .where(
                event_table.c.time >= since,
                event_table.c.source == OWN_SOURCE,
                event_table.c.kind == "escalation",
            )
            .order_by(event_table.c.time, event_table.c.id)
        )
        with self._transaction() as conn:
            return [event_from_row(row) for row in conn.execute(stmt).mappings()]

    def prune(self, older_than: float) -> PruneResult:
        """Delete finished runs created before `older_than`, then the events before it that
        no remaining run refers to; planned and running runs and their events always stay."""
        old_runs = sa.select(run_table.c.id).where(
            run_table.c.created_at < older_than,
            run_table.c.state.not_in((*_UNFINISHED, RunState.WAITING_APPROVAL.value)),
        )
        referenced = (
            sa.select(run_table.c.id).where(run_table.c.event_id == event_table.c.id).exists()
        )
        old_events = sa.select(event_table.c.id).where(event_table.c.time < older_than, ~referenced)
        runs = self._delete_in_batches(run_table, old_runs)
        self.approvals.prune()
        events = self._delete_in_batches(event_table, old_events)
        return PruneResult(events=events, runs=runs, incidents=self._prune_incidents(older_than),
                           suppressed=self.suppressed.prune(older_than),
                           silences=self.silences.prune(older_than),
                           slo_minutes=self.slo_samples.prune(older_than))  # fmt: skip

    def _prune_incidents(self, older_than: float) -> int:
        """Incidents resolved or closed before `older_than`, with their alerts and timeline;
        open, acknowledged and mitigated ones stay, however old."""
        c = incident_table.c
        old = (
            sa.select(c.id)
            .where(
                ((c.status == IncidentStatus.RESOLVED.value) & (c.resolved_at < older_than))
                | ((c.status == IncidentStatus.CLOSED.value) & (c.closed_at < older_than))
            )
            .limit(PRUNE_BATCH)
        )
        total = 0
        while True:
            with self._transaction(write=True) as conn:
                deleted = incident_rows.delete_incidents(conn, list(conn.execute(old).scalars()))
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    def ping(self) -> None:
        """Raise StoreError unless the store answers a trivial query."""
        with self._transaction() as conn:
            conn.execute(sa.select(1))

    def counts(self) -> dict[str, int]:
        """Row counts for status output."""
        n_events = sa.select(sa.func.count()).select_from(event_table).scalar_subquery()
        n_runs = sa.select(sa.func.count()).select_from(run_table).scalar_subquery()
        with self._transaction() as conn:
            row = conn.execute(sa.select(n_events, n_runs)).one()
        return {"events": row[0], "runs": row[1]}

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction; any database failure surfaces as a one-line StoreError."""
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield conn
        except (sa.exc.SQLAlchemyError, UnicodeError, OverflowError) as e:
            raise store_error(self._url, e) from e

    def _delete_in_batches(self, table: sa.Table, ids: sa.Select[str]) -> int:
        """Delete the rows whose ids `ids` selects, one batch per transaction, so that the
        engine's writes wait for one batch at most, never for a whole prune."""
        total = 0
        while True:
            batch = sa.delete(table).where(table.c.id.in_(ids.limit(PRUNE_BATCH)))
            with self._transaction(write=True) as conn:
                deleted = conn.execute(batch).rowcount
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    def _find(self, conn: Connection, table: sa.Table, ref: str, noun: str) -> sa.RowMapping:
        exact = conn.execute(sa.select(table).where(table.c.id == ref)).mappings().first()
        if exact is not None:
            return exact
        if len(ref) < MIN_REF:
            raise NotFoundError(f"no {noun} with id {ref!r} (give at least {MIN_REF} characters)")
        # substr() rather than LIKE: exact and case-sensitive on both backends, no escaping.
        n = len(ref)
        id_ = table.c.id
        stmt = (
            sa.select(table)
            .where(
                sa.func.length(id_) >= n,
                sa.or_(
                    sa.func.substr(id_, 1, n) == ref,
                    sa.func.substr(id_, sa.func.length(id_) - n + 1) == ref,
                ),
            )
            .order_by(id_)
            .limit(6)
        )
        found = conn.execute(stmt).mappings().all()
        if not found:
            raise NotFoundError(f"no {noun} id starts or ends with {ref!r}")
        if len(found) > 1:
            shown_ids = ", ".join(row["id"] for row in found[:5])
            more = ", ..." if len(found) > 5 else ""
            raise AmbiguousRef(
                f"{ref!r} matches several {noun}s ({shown_ids}{more}); give more characters"
            )
        return found[0]
