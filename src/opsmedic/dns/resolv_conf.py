"""The `resolv_conf` backend: reorder a resolv.conf's nameservers, atomically, and restore them."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import stat
from collections import deque
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from opsmedic.config.types import IPAddressText, Strict
from opsmedic.dns.switch import Direction, Switched, SwitchFailed
from opsmedic.files import NotDurable, write_atomic
from opsmedic.paths import FILE_CONFINED

# The line a failover leaves at the top of the file: it records the order to restore, so the
# file itself says what happened and a restarted opsmedic can still fail back.
MARKER = "# opsmedic dns_failover: nameservers were:"
MARKER_END = "-- failback restores them"
_MARKER_BODY_RE = re.compile(r"(.*?)[ \t]+" + re.escape(MARKER_END) + r"\s*", re.DOTALL)
# Separators as glibc's parser has them (\x0c or \x85 is none); the address ends where its
# comment does, and before the "\r" of a CRLF line.
_NAMESERVER_RE = re.compile(r"^[ \t]*nameserver[ \t]+([^ \t\r#;]+)")
GLIBC_MAX_NAMESERVERS = 3

# An address as parsed, so `2001:DB8::1` in the file is the configured `2001:db8::1`; a word
# that is no address (glibc ignores such a line) is kept as text and equals only itself.
_Key = ipaddress.IPv4Address | ipaddress.IPv6Address | str


class ResolvConfParams(Strict):
    path: Annotated[Path, FILE_CONFINED] = Field(
        Path("/etc/resolv.conf"),
        description="absolute path of the file; a templated part stays under the fixed directory",
    )
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

    @model_validator(mode="after")
    def _distinct(self) -> ResolvConfParams:
        if _key(self.primary) == _key(self.secondary):
            raise ValueError(f"primary and secondary are the same address ({self.primary})")
        return self


class ResolvConf:
    """A resolv.conf file; every other line and option is kept as it is, byte for byte."""

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
        # Only "\n" ends a line: str.splitlines() would also split on \x0c, \x85, \u2028, …
        # and drop the "\r" of a CRLF file, so the rewrite would not keep the other lines.
        lines = text.split("\n")
        current = nameservers(lines)
        saved = _saved_order(lines, p.path)
        details: dict[str, Any] = {"path": str(p.path), "mode": p.mode, "before": current}
        if direction is Direction.FAILOVER:
            plan = self._plan_failover(current, saved)
        else:
            plan = self._plan_failback(current, saved)
        if isinstance(plan, str):
            return Switched(False, plan, details)
        new, header = plan
        warning = _write(p.path, st, text, "\n".join(header + _with_nameservers(lines, new)))
        details["after"] = new
        message = f"{p.path}: nameservers {_words(current)} -> {_words(new)}"
        if len(new) > GLIBC_MAX_NAMESERVERS:
            message += f" (glibc reads only the first {GLIBC_MAX_NAMESERVERS})"
        if warning:
            details["warning"] = warning
            message += f"; warning: {warning}"
        return Switched(True, message, details)

    def _plan_failover(
        self, current: list[str], saved: list[str] | None
    ) -> str | tuple[list[str], list[str]]:
        """The new order and the marker to write, or why nothing needs doing."""
        p = self._p
        if saved is not None:
            return f"already failed over: {p.path} lists {_words(current)} (was {_words(saved)})"
        keys = _keys(current)
        if _key(p.primary) not in keys:
            if keys[:1] == [_key(p.secondary)]:
                return f"{p.path} already lists {p.secondary} first"
            raise SwitchFailed(f"{p.primary} is not a nameserver in {p.path} (it lists "
                               f"{_words(current) or 'none'}); nothing changed")  # fmt: skip
        for word, key in zip(current, keys, strict=True):
            if isinstance(key, str):
                # The marker could not record it for the failback to restore.
                raise SwitchFailed(f"{p.path} lists nameserver {word!r}, which is not an IP "
                                   "address; nothing changed")  # fmt: skip
        new = self._failed_over(current)
        if _keys(new) == keys:
            return f"{p.path} already lists {p.secondary} first"
        return new, [f"{MARKER} {' '.join(current)} {MARKER_END}"]

    def _plan_failback(
        self, current: list[str], saved: list[str] | None
    ) -> str | tuple[list[str], list[str]]:
        p = self._p
        if saved is None:
            if _keys(current)[:1] == [_key(p.primary)]:
                return f"{p.path} already lists {p.primary} first"
            raise SwitchFailed(f"no failover by opsmedic is recorded in {p.path} (no "
                               f"'{MARKER}' line); nothing changed")  # fmt: skip
        # Compare-and-swap: restore only over the very order the failover wrote.
        left = self._failed_over(saved)
        if _keys(current) != _keys(left):
            raise SwitchFailed(
                f"{p.path} was edited since the failover: it lists "
                f"{_words(current) or 'no nameserver'}, not {_words(left)} as the failover left "
                f"it; nothing changed (its '{MARKER}' line records the order before)"
            )
        return saved, []

    def _failed_over(self, order: list[str]) -> list[str]:
        p = self._p
        primary, secondary = _key(p.primary), _key(p.secondary)
        rest = [n for n in order if _key(n) != secondary]
        if p.mode == "first":
            return [p.secondary, *rest]
        return [p.secondary if _key(n) == primary else n for n in rest]


def nameservers(lines: list[str]) -> list[str]:
    """The nameserver addresses in file order, as written there."""
    return [m.group(1) for m in map(_NAMESERVER_RE.match, lines) if m]


def _key(word: str) -> _Key:
    try:
        return ipaddress.ip_address(word)
    except ValueError:
        return word


def _keys(words: list[str]) -> list[_Key]:
    return [_key(w) for w in words]


def _saved_order(lines: list[str], path: Path) -> list[str] | None:
    """The order the marker line records; None without one. SwitchFailed if it is unreadable.

    A marker opsmedic cannot trust is never guessed at: a wrong restore would point every
    lookup of the host at the wrong servers, or at none.
    """
    found = [(number, line) for number, line in enumerate(lines, 1) if line.startswith(MARKER)]
    if not found:
        return None
    if len(found) > 1:
        numbers = ", ".join(str(number) for number, _ in found)
        raise SwitchFailed(f"{path} has {len(found)} '{MARKER}' lines (lines {numbers}): keep "
                           "the right one by hand; nothing changed")  # fmt: skip
    number, line = found[0]
    body = _MARKER_BODY_RE.fullmatch(line[len(MARKER) :])
    words = body.group(1).split() if body else []
    bad = [w for w in words if isinstance(_key(w), str)]
    if body is None or not words or bad:
        why = (f"it does not end in '{MARKER_END}'" if body is None
               else f"{bad[0]!r} is not an IP address" if bad
               else "it lists no address")  # fmt: skip
        raise SwitchFailed(f"{path} line {number}: the '{MARKER}' line is unreadable ({why}); "
                           "fix or remove it by hand; nothing changed")  # fmt: skip
    return words


def _with_nameservers(lines: list[str], order: list[str]) -> list[str]:
    """`lines` without the marker, the i-th nameserver line now naming `order[i]`.

    Positions are kept, so a failback restores an interleaved file exactly; addresses beyond
    the old count follow the last nameserver line. A kept address keeps its line (and
    comment), each of its lines in turn when it is listed twice.
    """
    original: dict[_Key, deque[str]] = {}
    for line in lines:
        if m := _NAMESERVER_RE.match(line):
            original.setdefault(_key(m.group(1)), deque()).append(line)
    block = []
    for address in order:
        kept = original.get(_key(address))
        block.append(kept.popleft() if kept else f"nameserver {address}")
    slots = sum(1 for line in lines if _NAMESERVER_RE.match(line))
    out: list[str] = []
    for line in lines:
        if line.startswith(MARKER):
            continue
        if not _NAMESERVER_RE.match(line):
            out.append(line)
            continue
        slots -= 1
        take = len(block) if slots == 0 else min(1, len(block))
        out += block[:take]
        block = block[take:]
    return out


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
        # Bytes, decoded without newline translation: a CRLF file stays CRLF.
        return st, path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SwitchFailed(f"{path} does not exist; nothing changed") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SwitchFailed(f"cannot read {path}: {_reason(exc)}; nothing changed") from None


def _write(path: Path, st: os.stat_result, seen: str, text: str) -> str:
    """Replace the file's text; a warning when it was replaced but may not survive a crash."""
    if not st.st_mode & 0o222:
        # root could write it anyway; a file nobody may write was protected on purpose
        # (against DHCP clients, say), and we respect that.
        raise SwitchFailed(f"{path} is read-only (mode {st.st_mode & 0o777:04o}); nothing changed")
    try:
        if path.read_bytes() != seen.encode("utf-8"):
            raise SwitchFailed(f"{path} changed while it was being switched; nothing changed")
        write_atomic(path, text, like=st)
    except NotDurable as exc:
        return (f"{path} was replaced, but syncing its directory failed ({_reason(exc)}): a "
                "crash now may bring the old file back")  # fmt: skip
    except OSError as exc:
        raise SwitchFailed(f"cannot write {path}: {_reason(exc)}; nothing changed") from None
    return ""


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _words(addresses: list[str]) -> str:
    return " ".join(addresses)
