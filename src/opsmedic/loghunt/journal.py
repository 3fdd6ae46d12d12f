"""The systemd journal of a unit as a log: `journalctl -o json` entries made lines again."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmedic.errors import HuntInputError
from opsmedic.loghunt.commands import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_S,
    CommandSource,
    SshCommandSource,
)

JOURNALCTL = "journalctl"
MAX_ENTRY_BYTES = 8 << 20  # of one entry's JSON; --all lets a MESSAGE be any size

if TYPE_CHECKING:  # only in annotations: `logs hunt` of files never loads the config's models
    from opsmedic.config.schema import SSHHost


def journal_argv(
    unit: str, since: datetime | None, until: datetime | None, program: str = JOURNALCTL
) -> list[str]:
    """journalctl's argv for `unit` between two times (whole seconds since the epoch, widened
    to hold the window: the hunt keeps to the exact window itself). `--all`: without it,
    JSON output turns a field over 4096 bytes (a long traceback) into null."""
    if not unit or unit.startswith("-") or any(c.isspace() or c == "\0" for c in unit):
        raise HuntInputError(f"--journal {unit!r}: not a unit name (such as nginx.service)")
    argv = [program, "--output=json", "--all", "--no-pager", f"--unit={unit}"]
    if since is not None:
        argv.append(f"--since=@{math.floor(since.timestamp())}")
    if until is not None:
        argv.append(f"--until=@{math.ceil(until.timestamp())}")
    return argv


class JournalSource:
    """A unit's journal entries between `since` and `until` as lines `<ISO time>
    <unit>[pid]: MESSAGE`, so the time window and multi-line events work as on a file (a
    MESSAGE of several lines keeps them). Run locally, or on `host` over SSH, with `env` as
    CommandSource's; the command's notes (exit, stderr, timeout, output cap) are this
    source's."""

    def __init__(
        self,
        unit: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        host: SSHHost | None = None,
        label: str | None = None,
        base_dir: Path = Path(),
        program: str = JOURNALCTL,
        env: Mapping[str, str] | None = None,
    ) -> None:
        argv = journal_argv(unit, since, until, program)
        self.unit = unit
        self.command: CommandSource
        if host is None:
            self.command = CommandSource(argv, timeout, max_bytes, env=env, name=f"journal:{unit}")
        else:
            where = label or host.host
            self.command = SshCommandSource(
                host,
                argv,
                timeout,
                max_bytes,
                base_dir=base_dir,
                name=f"{where}:journal:{unit}",
                env=env,
            )
        self.name = self.command.name
        self.size: int | None = None
        self.notes = self.command.notes
        self.position = 0  # bytes of JSON read
        self.skipped = 0  # lines that are no JSON object
        self.too_long = 0

    def chunks(self) -> Iterator[bytes]:
        pending, dropping = b"", False
        for data in self.command.chunks():
            self.position = self.command.position
            *entries, pending = (pending + data).split(b"\n")
            if dropping and entries:
                entries, dropping = entries[1:], False  # the end of an entry too long
            if len(pending) > MAX_ENTRY_BYTES:
                # Held whole until its newline otherwise: memory would follow the entry.
                if not dropping:
                    self.too_long += 1
                pending, dropping = b"", True
            yield b"".join(self._line(entry) for entry in entries)
        if not dropping:
            yield self._line(pending)
        if self.skipped:
            lines = "1 line" if self.skipped == 1 else f"{self.skipped} lines"
            self.notes.append(f"{self.name}: {lines} of its output not a journal entry, skipped")
        if self.too_long:
            many = "1 entry" if self.too_long == 1 else f"{self.too_long} entries"
            self.notes.append(f"{self.name}: {many} over {MAX_ENTRY_BYTES} bytes skipped")

    def _line(self, raw: bytes) -> bytes:
        if not raw.strip():
            return b""
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            self.skipped += 1
            return b""
        return entry_line(entry, self.unit)

    def abort(self) -> None:
        """See CommandSource.abort."""
        self.command.abort()

    def close(self) -> None:
        self.command.close()


def entry_line(entry: dict[str, Any], unit: str) -> bytes:
    """One journal entry as the line(s) a log file would have held."""
    head = b""
    micros = _text(entry.get("__REALTIME_TIMESTAMP"))
    if micros.isdigit():
        seconds, fraction = divmod(int(micros), 1_000_000)
        when = datetime.fromtimestamp(seconds, UTC)
        head = f"{when:%Y-%m-%dT%H:%M:%S}.{fraction:06d}Z ".encode()
    name = _text(entry.get("_SYSTEMD_UNIT")) or _text(entry.get("UNIT")) or unit
    pid = _text(entry.get("_PID")) or _text(entry.get("SYSLOG_PID"))
    head += (f"{name}[{pid}]: " if pid else f"{name}: ").encode()
    message = _value(entry.get("MESSAGE")).rstrip(b"\n")
    return head + message + b"\n"


def _value(value: Any) -> bytes:
    """A field's bytes: a string; an array of byte values (not UTF-8, or binary); an array of
    either when the field was given several times (joined by newlines); null (too long
    without --all) as nothing."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list):
        if all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return bytes(value)
        return b"\n".join(_value(v) for v in value)
    return b"" if value is None else str(value).encode()


def _text(value: Any) -> str:
    return _value(value).decode("utf-8", "replace") if value is not None else ""
