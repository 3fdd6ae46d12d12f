"""Who runs a run: an engine's owner id and lease on its running runs, and who is gone."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.model import RunState
from opsmedic.store.schema import runs as run_table

_RUNNING = RunState.RUNNING.value


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip() if path.startswith("/proc") else os.readlink(path)
    except OSError:  # no /proc (not Linux): the host name alone names the node
        return ""


def this_node() -> str:
    """This host as pids are compared on it: its name, with a digest of its boot and pid
    namespace, so that a pid of another boot or another container never counts as ours."""
    seen = _read("/proc/sys/kernel/random/boot_id") + "\0" + _read("/proc/self/ns/pid")
    return f"{socket.gethostname()}/{hashlib.sha256(seen.encode()).hexdigest()[:12]}"


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end it on Windows: never provably gone there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@dataclass(frozen=True, slots=True)
class RunOwner:
    """One engine's claim on the runs it runs: written with each run it moves to `running`
    (`runs.owner`, `runs.lease_until`) and renewed while it lives (engine/leases.py)."""

    now: Callable[[], float]
    lease: float = 30.0  # seconds a claim holds without renewal
    node: str = field(default_factory=this_node)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def id(self) -> str:
        return f"{self.node}:{self.pid}:{self.token}"

    def stamp(self) -> dict[str, object]:
        """The columns a run this owner moves to `running` gets."""
        return {"owner": self.id, "lease_until": self.now() + self.lease}

    def sees_gone(self, owner: str) -> bool:
        """Whether the process `owner` names is provably gone: it ran on this node, and its
        pid is gone, or is this process's while the owner is another (the pid was reused)."""
        node, pid, _ = ([*owner.rsplit(":", 2), "", ""])[:3]
        if node != self.node or not pid.isdigit() or owner == self.id:
            return False
        return int(pid) == self.pid or not _alive(int(pid))


_UNOWNED: dict[str, object] = {"owner": None, "lease_until": None}


def stamp(owner: RunOwner | None) -> dict[str, object]:
    """The owner columns of a run moved to `running` by `owner` (None: no engine's)."""
    return owner.stamp() if owner is not None else dict(_UNOWNED)


def lapsed(conn: Connection, owner: RunOwner | None, now: float) -> sa.ColumnElement[bool]:
    """Which running runs recovery may take, read in the recovery's transaction: those of no
    owner (written before owners), whose lease ran out, or whose owner is provably gone."""
    live = conn.execute(
        sa.select(run_table.c.owner).distinct()
        .where(run_table.c.state == _RUNNING, run_table.c.owner.is_not(None),
               run_table.c.lease_until >= now)
    ).scalars()  # fmt: skip
    gone = [found for found in live if owner is not None and owner.sees_gone(found)]
    return sa.or_(
        run_table.c.owner.is_(None), run_table.c.lease_until < now, run_table.c.owner.in_(gone)
    )


def renew(conn: Connection, owner: RunOwner) -> int:
    """Extend the lease of every run `owner` has running; returns how many."""
    stmt = (
        sa.update(run_table)
        .where(run_table.c.owner == owner.id, run_table.c.state == _RUNNING)
        .values(lease_until=owner.now() + owner.lease)
    )
    return conn.execute(stmt).rowcount
