"""Where archives go: the Destination contract (local directory or SFTP) used by the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from opsmedic.archive.local import LocalDestination
from opsmedic.config.schema import SSHHost
from opsmedic.errors import ActionError


class Places(Protocol):
    """Where an archive run's paths resolve: the Config, or the archive_logs action's context."""

    @property
    def base_dir(self) -> Path: ...  # the config's directory: relative paths live beside it

    @property
    def state_dir(self) -> Path: ...  # where the intent journal is kept

    @property
    def ssh_hosts(self) -> Mapping[str, SSHHost]: ...  # the hosts sftp:// URLs may name


class Destination(Protocol):
    """A place that holds finished archives; every method is blocking (called from a thread).

    The pipeline writes `name + ".part"`, syncs it, reads it back to verify, then commits it
    to `name` without ever replacing an existing file.
    """

    label: str  # for messages and outcomes: "/backup/logs" or "sftp://backup@10.0.0.5:22/archive"

    def open_part(self, name: str) -> BinaryIO:
        """Create `name.part` for writing; FileExistsError when it exists already."""
        ...

    def sync_close(self, part: BinaryIO) -> None:
        """Flush, fsync (fsync@openssh.com over SFTP) and close a file from open_part."""
        ...

    def open_read(self, name: str) -> BinaryIO:
        """Open `name` (a part's full name or a committed archive) to read it back."""
        ...

    def size(self, name: str) -> int | None:
        """Size in bytes of `name`, or None when it does not exist."""
        ...

    def commit(self, name: str) -> None:
        """Move `name.part` to `name` (FileExistsError if `name` exists), then sync the dir."""
        ...

    def remove(self, name: str) -> None:
        """Delete `name` (a part or an archive); a missing file is not an error."""
        ...

    def close(self) -> None:
        """Release connections; the destination is not used afterwards."""
        ...


async def open_destination(to: str, places: Places) -> Destination:
    """The destination a rule names: `sftp://…`, or a local directory (relative to the config)."""
    if to.startswith("sftp://"):
        # Imported here: asyncssh costs a noticeable start-up, and local archiving needs none.
        from opsmedic.archive.sftp import open_sftp_destination

        return await open_sftp_destination(to, places, asyncio.get_running_loop())
    if "://" in to:
        raise ActionError(f"destination {to!r}: only a local directory or sftp:// is supported")
    return await asyncio.to_thread(_local, places.base_dir, to)


def _local(base_dir: Path, to: str) -> LocalDestination:
    return LocalDestination(base_dir / Path(to).expanduser())
