"""The `resolv_conf` backend: reorder a resolv.conf's nameservers, atomically, and restore them."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from opsmedic.config.schema import Strict
from opsmedic.config.types import IPAddressText
from opsmedic.dns.switch import Direction, Switched, SwitchFailed
from opsmedic.files import write_atomic

# The line a failover leaves at the top of the file: it records the order to restore, so the
# file itself says what happened and a restarted opsmedic can still fail back.
MARKER = "# opsmedic dns_failover: nameservers were:"
_MARKER_RE = re.compile(re.escape(MARKER) + r" ([0-9A-Fa-f.: ]+) -- failback restores them$")
_NAMESERVER_RE = re.compile(r"^\s*nameserver\s+(\S+)")
GLIBC_MAX_NAMESERVERS = 3


class ResolvConfParams(Strict):
    path: Path = Field(Path("/etc/resolv.conf"), description="absolute path of the file")
    primary: IPAddressText = Field(description="the primary's address, as in the file")
    secondary: IPAddressText = Field(description="the secondary's address")
    mode: Literal["first", "replace"] = Field(
        "first", description="first: put the secondary first; replace: swap it in for the primary"
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"give an absolute path, got {str(value)!r}")
        return value


class ResolvConf:
    """A resolv.conf file; every other line and option is kept as it is."""

    def __init__(self, params: ResolvConfParams) -> None:
        self._p = params

    @property
    def subject(self) -> str:
        return str(self._p.path)

    async def switch(self, direction: Direction, deadline: float) -> Switched:
        # A local file: the work is a few syscalls, the deadline cannot be in danger.
        return await asyncio.to_thread(self._switch, direction)

    def _switch(self, direction: Direction) -> Switched:
        p = self._p
        st, text = _read(p.path)
        lines = text.splitlines()
        current = nameservers(lines)
        saved = _saved_order(lines)
        details = {"path": str(p.path), "mode": p.mode, "before": current}
        if direction is Direction.FAILOVER:
            if saved is not None:
                return Switched(False, f"already failed over: {p.path} lists {_words(current)} "
                                f"(was {_words(saved)})", details)  # fmt: skip
            if current[:1] == [p.secondary] and p.primary not in current:
                return Switched(False, f"{p.path} already lists {p.secondary} first", details)
            if p.primary not in current:
                listed = _words(current) or "none"
                raise SwitchFailed(
                    f"{p.primary} is not a nameserver in {p.path} (it lists {listed}); "
                    "nothing changed"
                )
            new = self._failed_over(current)
            header = [f"{MARKER} {' '.join(current)} -- failback restores them"]
        else:
            if saved is None:
                if current[:1] == [p.primary]:
                    return Switched(False, f"{p.path} already lists {p.primary} first", details)
                raise SwitchFailed(f"no failover by opsmedic is recorded in {p.path} (no "
                                   f"'{MARKER}' line); nothing changed")  # fmt: skip
            new, header = saved, []
        _write(p.path, st, text, "\n".join(header + _with_nameservers(lines, new)) + "\n")
        details["after"] = new
        note = ""
        if len(new) > GLIBC_MAX_NAMESERVERS:
            note = f" (glibc reads only the first {GLIBC_MAX_NAMESERVERS})"
        return Switched(True, f"{p.path}: nameservers {_words(current)} -> {_words(new)}{note}",
                        details)  # fmt: skip

    def _failed_over(self, current: list[str]) -> list[str]:
        p = self._p
        if p.mode == "first":
            return [p.secondary] + [n for n in current if n != p.secondary]
        return [p.secondary if n == p.primary else n for n in current if n != p.secondary]


def nameservers(lines: list[str]) -> list[str]:
    """The nameserver addresses in file order."""
    return [m.group(1) for m in map(_NAMESERVER_RE.match, lines) if m]


def _saved_order(lines: list[str]) -> list[str] | None:
    for line in lines:
        if m := _MARKER_RE.match(line):
            return m.group(1).split()
    return None


def _with_nameservers(lines: list[str], order: list[str]) -> list[str]:
    """`lines` without the marker, the i-th nameserver line now naming `order[i]`.

    Positions are kept, so a failback restores an interleaved file exactly; addresses beyond
    the old count follow the last nameserver line. A kept address keeps its line (and comment).
    """
    original = {m.group(1): line for line in lines if (m := _NAMESERVER_RE.match(line))}
    block = [original.get(address, f"nameserver {address}") for address in order]
    slots = sum(1 for line in lines if _NAMESERVER_RE.match(line))
    out: list[str] = []
    for line in lines:
        if _MARKER_RE.match(line):
            continue
        if not _NAMESERVER_RE.match(line):
            out.append(line)
            continue
        slots -= 1
        take = len(block) if slots == 0 else min(1, len(block))
        out += block[:take]
        block = block[take:]
    return out + block


def _read(path: Path) -> tuple[os.stat_result, str]:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            raise SwitchFailed(
                f"{path} is a symlink to {os.readlink(path)} (under systemd-resolved, change "
                "resolved's upstream servers instead: see docs/dns.md); nothing changed"
            )
        if not stat.S_ISREG(st.st_mode):
            raise SwitchFailed(f"{path} is not a regular file; nothing changed")
        return st, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SwitchFailed(f"{path} does not exist; nothing changed") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SwitchFailed(f"cannot read {path}: {_reason(exc)}; nothing changed") from None


def _write(path: Path, st: os.stat_result, seen: str, text: str) -> None:
    if not st.st_mode & 0o222:
        # root could write it anyway; a file nobody may write was protected on purpose
        # (against DHCP clients, say), and we respect that.
        raise SwitchFailed(f"{path} is read-only (mode {st.st_mode & 0o777:04o}); nothing changed")
    try:
        if path.read_text(encoding="utf-8") != seen:
            raise SwitchFailed(f"{path} changed while it was being switched; nothing changed")
        write_atomic(path, text, like=st)
    except OSError as exc:
        raise SwitchFailed(f"cannot write {path}: {_reason(exc)}; nothing changed") from None


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _words(addresses: list[str]) -> str:
    return " ".join(addresses)
