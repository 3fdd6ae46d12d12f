"""The archive intent journal: what a run set out to do, so a killed run is finished or undone."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmedic.archive.formats import EXTENSIONS, Format, Member
from opsmedic.archive.local import fsync_dir
from opsmedic.archive.select import Candidate, Identity
from opsmedic.errors import ActionError
from opsmedic.files import flocked, write_atomic

_SUFFIX = ".intent.json"
_VERSION = 1
_LOCK_POLL_S = 0.05


@dataclass(slots=True)
class Intent:
    """One archive in flight. `members` is set once the `.part` verified, before the commit:
    an intent without members never has a committed archive, so undoing it is always safe."""

    name: str  # the archive's final name at the destination
    to: str  # the destination as the rule wrote it, to reopen it on recovery
    format: Format
    delete: bool
    files: list[Candidate]
    members: list[Member] | None = None
    created: float = field(default_factory=time.time)


class IntentJournal:
    """One fsynced JSON file per intent in `<state_dir>/archive`."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "archive"

    def path(self, intent: Intent) -> Path:
        return self.dir / f"{intent.name}{_SUFFIX}"

    def save(self, intent: Intent) -> None:
        write_atomic(self.path(intent), json.dumps(_encode(intent), indent=1))

    def drop(self, intent: Intent) -> None:
        self.path(intent).unlink(missing_ok=True)
        fsync_dir(self.dir)

    def pending(self) -> tuple[list[Intent], list[str]]:
        """Intents left by runs that did not finish, and the files that cannot be read."""
        if not self.dir.is_dir():
            return [], []
        found: list[Intent] = []
        problems: list[str] = []
        for path in sorted(self.dir.iterdir()):
            if path.name.startswith(".") and path.name.endswith(".part"):
                path.unlink(missing_ok=True)  # write_atomic's temporary, killed before its rename
            elif path.name.endswith(_SUFFIX):
                try:
                    found.append(_decode(json.loads(path.read_text(encoding="utf-8"))))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    problems.append(f"{path}: unreadable intent, left for a human: {exc}")
        return found, problems

    @contextlib.asynccontextmanager
    async def locked(self, deadline: float) -> AsyncIterator[None]:
        """Hold the journal alone (one archive run at a time per state_dir, across processes).

        Without it a second run's recovery would undo the first run's live intent. Polled
        without blocking, so a cancelled waiter never leaves a lock taken behind it.
        """
        lock = self.dir / ".lock"

        def busy() -> ActionError:
            return ActionError(f"another archive run holds {lock}; try again later")

        async with flocked(lock, deadline, busy):
            yield


def _encode(intent: Intent) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "name": intent.name,
        "to": intent.to,
        "format": intent.format,
        "delete": intent.delete,
        "created": intent.created,
        "files": [
            {
                "path": str(c.path),
                "arcname": c.arcname,
                "mode": c.mode,
                "dev": c.identity.dev,
                "ino": c.identity.ino,
                "size": c.identity.size,
                "mtime_ns": c.identity.mtime_ns,
            }
            for c in intent.files
        ],
        "members": None
        if intent.members is None
        else [{"arcname": m.arcname, "size": m.size, "sha256": m.sha256} for m in intent.members],
    }


def _decode(data: dict[str, Any]) -> Intent:
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown intent version {data.get('version')!r}")
    if data["format"] not in EXTENSIONS:
        raise ValueError(f"unknown archive format {data['format']!r}")
    files = [
        Candidate(
            Path(f["path"]),
            f["arcname"],
            Identity(int(f["dev"]), int(f["ino"]), int(f["size"]), int(f["mtime_ns"])),
            int(f["mode"]),
        )
        for f in data["files"]
    ]
    members = data["members"]
    return Intent(
        name=str(data["name"]),
        to=str(data["to"]),
        format=data["format"],
        delete=bool(data["delete"]),
        files=files,
        members=None
        if members is None
        else [Member(str(m["arcname"]), int(m["size"]), str(m["sha256"])) for m in members],
        created=float(data["created"]),
    )
