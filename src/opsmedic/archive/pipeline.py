"""The crash-safe archive sequence: intent → .part → fsync → verify → commit → delete → forget."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from opsmedic.archive.destination import Destination, Places, open_destination
from opsmedic.archive.formats import (
    EXTENSIONS,
    FileChanged,
    Format,
    Member,
    VerifyError,
    open_writer,
    verify,
)
from opsmedic.archive.intents import Intent, IntentJournal
from opsmedic.archive.select import Candidate, Identity, Skip
from opsmedic.errors import ActionError, OpsmedicError

T = TypeVar("T")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Cancelled(ActionError):
    """Out of time, or the run was cancelled, before the commit: nothing was deleted."""


class ArchiveFailed(ActionError):
    """This archive could not be written and verified: its .part is gone, originals untouched."""


@dataclass(slots=True)
class Control:
    """Shared with the worker thread: when to stop, and where progress goes."""

    deadline: float  # time.monotonic() value
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[int], None] | None = None

    def stopped(self) -> str | None:
        """Why the work must stop now ("cancelled", "timed out"), or None."""
        if self.cancel.is_set():
            return "cancelled"
        return "timed out" if time.monotonic() > self.deadline else None

    def check(self) -> None:
        why = self.stopped()
        if why is not None:
            raise Cancelled(f"{why} before the archive was committed; nothing deleted")

    def tick(self, n: int) -> None:
        """Progress of `n` bytes; also where a long write or verify notices it must stop."""
        self.check()
        if self.progress is not None:
            self.progress(n)


@dataclass(slots=True)
class Deletion:
    deleted: list[Candidate] = field(default_factory=list)
    kept: list[Skip] = field(default_factory=list)  # changed since read: its copy is partial
    gone: list[str] = field(default_factory=list)  # already missing (a killed run got to it)


@dataclass(slots=True)
class Written:
    """One committed archive and what happened to its originals."""

    name: str
    files: list[Candidate]
    members: list[Member]
    bytes_out: int
    dropped: list[Skip]  # left out while writing: vanished, replaced or truncated
    deletion: Deletion | None


@dataclass(slots=True)
class Recovered:
    name: str
    action: str  # "finished" (committed; originals deleted), "undone" or "kept" (see message)
    message: str
    deletion: Deletion | None = None


# What recovery did, and the intents it had to keep (destination unreachable, bad archive).
RecoveryReport = tuple[list[Recovered], list[str]]


def archive_name(host: str, label: str, stamp: str, fmt: Format, run_tag: str) -> str:
    """`web-1-app-20261122T101500Z-1a2b3c4d.tar.zst`: sorts by host, label, then time."""
    parts = (_UNSAFE_IN_NAME.sub("_", part).strip("._-")[:60] or "x" for part in (host, label))
    return f"{'-'.join(parts)}-{stamp}-{run_tag}{EXTENSIONS[fmt]}"


def write_archive(
    dest: Destination, journal: IntentJournal, intent: Intent, level: int | None, control: Control
) -> Written:
    """Archive `intent.files`, verified, then delete the originals that did not change.

    Raises Cancelled or ArchiveFailed (an error before the commit: .part and intent gone,
    nothing deleted), or lets an error of the commit itself through with the intent kept,
    so that recovery decides from what is really at the destination.
    """
    dropped: list[Skip] = []
    try:
        journal.save(intent)
        members, files = _write_verified(dest, intent, level, dropped, control)
        bytes_out = dest.size(f"{intent.name}.part") or 0
        control.check()
        intent.members = members
        journal.save(intent)
    except BaseException as exc:
        _undo(dest, journal, intent)
        # ValueError: a name the format cannot store (zip wants UTF-8); the run must fail
        # with the reason, not crash and repeat.
        if isinstance(exc, OSError | OpsmedicError | ValueError) and not isinstance(exc, Cancelled):
            raise ArchiveFailed(f"{intent.name}: {reason(exc)}; nothing deleted") from exc
        raise
    dest.commit(intent.name)
    deletion = delete_originals(files, members) if intent.delete else None
    journal.drop(intent)
    return Written(intent.name, files, members, bytes_out, dropped, deletion)


def _write_verified(
    dest: Destination, intent: Intent, level: int | None, dropped: list[Skip], control: Control
) -> tuple[list[Member], list[Candidate]]:
    files = list(intent.files)
    for attempt in (1, 2):
        try:
            members, files = _write_part(dest, intent, files, level, dropped, control)
            break
        except _SourceChanged as exc:
            dest.remove(f"{intent.name}.part")
            files.remove(exc.candidate)
            dropped.append(Skip(str(exc.candidate.path), f"changed while read: {exc}"))
            if attempt == 2 or not files:
                raise ArchiveFailed(f"files kept changing while read ({exc})") from None
    if not members:
        raise ArchiveFailed("every file vanished or changed before it could be read")
    with dest.open_read(f"{intent.name}.part") as src:
        verify(intent.format, src, members, control.tick)
    return members, files


class _SourceChanged(Exception):
    def __init__(self, candidate: Candidate, message: str) -> None:
        super().__init__(message)
        self.candidate = candidate


def _write_part(
    dest: Destination,
    intent: Intent,
    files: list[Candidate],
    level: int | None,
    dropped: list[Skip],
    control: Control,
) -> tuple[list[Member], list[Candidate]]:
    out = dest.open_part(intent.name)
    members: list[Member] = []
    archived: list[Candidate] = []
    try:
        writer = open_writer(intent.format, out, level=level)
        for c in files:
            src = _open_source(c, dropped)
            if src is None:
                continue
            with src:
                try:
                    mtime = c.identity.mtime_ns / 1e9
                    members.append(
                        writer.add(src, c.arcname, c.identity.size, mtime, c.mode, control.tick)
                    )
                except FileChanged as exc:
                    raise _SourceChanged(c, str(exc)) from exc
            archived.append(c)
        writer.close()
    except BaseException:
        with contextlib.suppress(OSError, OpsmedicError):
            out.close()  # unsynced: the part is removed next, or by recovery
        raise
    dest.sync_close(out)
    return members, archived


def _open_source(c: Candidate, dropped: list[Skip]) -> BinaryIO | None:
    """The selected file itself (same inode), or None with the reason it is left out."""
    try:
        # O_NONBLOCK: a FIFO swapped in at this name must not block the open forever.
        fd = os.open(c.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        dropped.append(Skip(str(c.path), f"cannot open since selection: {reason(exc)}"))
        return None
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "no longer a regular file"
    elif (st.st_dev, st.st_ino) != (c.identity.dev, c.identity.ino):
        why = "replaced by another file since selection"
    elif st.st_size < c.identity.size:
        why = f"truncated since selection ({c.identity.size} → {st.st_size} bytes)"
    if why is not None:
        os.close(fd)
        dropped.append(Skip(str(c.path), why))
        return None
    # A file that grew is archived up to its selected size, and kept (its identity changed).
    return cast(BinaryIO, os.fdopen(fd, "rb", buffering=0))


def delete_originals(files: Iterable[Candidate], members: Iterable[Member]) -> Deletion:
    """Unlink each file the archive holds whole, if it is still exactly what was read."""
    stored = {m.arcname: m.size for m in members}
    deletion = Deletion()
    ours = sorted((c for c in files if stored.get(c.arcname) == c.identity.size), key=_parent)
    for parent, group in groupby(ours, key=_parent):
        try:
            dir_fd = _open_dir(parent)
        except OSError as exc:
            deletion.kept.extend(Skip(str(c.path), reason(exc)) for c in group)
            continue
        try:
            for c in group:
                _delete_one(c, dir_fd, deletion)
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return deletion


def _parent(c: Candidate) -> Path:
    return c.path.parent


def _open_dir(parent: Path) -> int:
    # Names are unlinked relative to this fd, so a path swapped afterwards cannot redirect them.
    if os.path.realpath(parent) != str(parent):
        raise OSError(f"{parent} is now reached through a symlink; original kept")
    return os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _delete_one(c: Candidate, dir_fd: int, deletion: Deletion) -> None:
    try:
        now = Identity.of(os.stat(c.path.name, dir_fd=dir_fd, follow_symlinks=False))
    except FileNotFoundError:
        deletion.gone.append(str(c.path))
        return
    except OSError as exc:
        deletion.kept.append(Skip(str(c.path), f"cannot check it: {reason(exc)}; kept"))
        return
    if now != c.identity:
        was = c.identity
        why = (
            f"grew since read ({was.size} → {now.size} bytes); the archive holds the first "
            f"{was.size}"
            if (now.dev, now.ino) == (was.dev, was.ino) and now.size > was.size
            else "changed since read"
        )
        deletion.kept.append(Skip(str(c.path), f"{why}; original kept"))
        return
    try:
        os.unlink(c.path.name, dir_fd=dir_fd)
    except FileNotFoundError:
        deletion.gone.append(str(c.path))
        return
    except OSError as exc:
        deletion.kept.append(Skip(str(c.path), f"cannot delete it: {reason(exc)}"))
        return
    deletion.deleted.append(c)


def _undo(dest: Destination, journal: IntentJournal, intent: Intent) -> None:
    """Before the commit: remove the part, then forget the intent.

    If either fails (destination gone, state_dir full), what is left is an intent that
    never committed, which the next run's recovery undoes the same way.
    """
    with contextlib.suppress(OSError, OpsmedicError):
        dest.remove(f"{intent.name}.part")
        journal.drop(intent)


def recover_intent(
    dest: Destination, journal: IntentJournal, intent: Intent, control: Control
) -> Recovered:
    """Finish an intent a killed run left (committed and verified), or undo it; blocking."""
    part = f"{intent.name}.part"
    if intent.members is None or dest.size(intent.name) is None:
        dest.remove(part)
        journal.drop(intent)
        return Recovered(intent.name, "undone", "never committed: part removed, originals kept")
    try:
        with dest.open_read(intent.name) as src:
            verify(intent.format, src, intent.members, control.tick)
    except VerifyError as exc:
        return Recovered(
            intent.name,
            "kept",
            f"committed archive fails verification ({exc}): originals kept, intent left "
            f"in {journal.dir} for a human",
        )
    dest.remove(part)  # a commit by link() killed before it unlinked the part
    deletion = delete_originals(intent.files, intent.members) if intent.delete else None
    journal.drop(intent)
    return Recovered(intent.name, "finished", "committed archive verified", deletion)


def reason(exc: BaseException) -> str:
    """An error as one short phrase: `No space left on device (/backup/x.part)`."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


async def recover(places: Places, *, time_limit: float = 600.0) -> RecoveryReport:
    """Finish or undo what killed archive runs left, on its own (each run does so first)."""
    control = Control(time.monotonic() + time_limit)
    journal = IntentJournal(places.state_dir)
    async with journal.locked(control.deadline):
        return await recover_pending(journal, places, control)


async def recover_pending(
    journal: IntentJournal, places: Places, control: Control
) -> RecoveryReport:
    """Each pending intent finished or undone; problems (intent kept) listed, never raised."""
    intents, problems = await in_thread(control, journal.pending)
    done: list[Recovered] = []
    for to in sorted({i.to for i in intents}):
        try:
            dest = await open_destination(to, places)
        except (OSError, OpsmedicError) as exc:
            problems.append(f"recovery: destination {to}: {reason(exc)}; its intents are kept")
            continue
        try:
            for intent in (i for i in intents if i.to == to):
                try:
                    done.append(
                        await in_thread(control, recover_intent, dest, journal, intent, control)
                    )
                except (OSError, OpsmedicError) as exc:
                    problems.append(
                        f"recovery of {intent.name}: {reason(exc)}; intent kept for later"
                    )
        finally:
            await asyncio.to_thread(dest.close)
    return done, problems


async def in_thread(control: Control, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work in a thread; on cancellation, have it stop and wait until it has.

    A thread cannot be interrupted: left alone it could go on to delete files after the run
    was recorded as cancelled, and after the journal lock was released.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        control.cancel.set()
        await asyncio.wait([task])
        raise
