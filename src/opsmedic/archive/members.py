"""Archive members: what was stored (name, size, SHA-256), copied in and checked back out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from opsmedic.errors import OpsmedicError

CHUNK = 1 << 20  # read and hash granularity: big enough to release the GIL, small for memory


@dataclass(frozen=True, slots=True)
class Member:
    """One archived file: its name in the archive, its size and the SHA-256 of the bytes stored."""

    arcname: str
    size: int
    sha256: str


class FileChanged(OpsmedicError):
    """A source ended before the size seen at selection; the writer is unusable afterwards."""


class VerifyError(OpsmedicError):
    """An archive read back is not exactly the expected members, intact; says which and why."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A reader's event: the member `name` starts; the byte chunks that follow are its content."""

    name: str


def check_new_member(arcname: str, size: int, taken: set[str]) -> None:
    """ValueError unless `arcname` is new and extracts inside its directory, and `size` >= 0."""
    if size < 0:
        raise ValueError(f"{arcname}: negative size {size}")
    parts = arcname.split("/")
    if not arcname or "\0" in arcname or arcname.startswith("/") or ".." in parts:
        raise ValueError(f"archive name {arcname!r} must be relative, without '..' or NUL")
    if arcname in taken:
        raise ValueError(f"archive name {arcname!r} is already in this archive")
    taken.add(arcname)


def copy_member(
    src: BinaryIO,
    arcname: str,
    size: int,
    sink: Callable[[bytes], object],
    progress: Callable[[int], None] | None,
) -> Member:
    """Pass exactly `size` bytes of `src` to `sink`, hashing them; FileChanged if `src` ends early.

    A log that keeps growing is cut at `size` (what the selection saw), never read to its end.
    """
    digest = hashlib.sha256()
    left = size
    while left:
        data = src.read(min(CHUNK, left))
        if not data:
            raise FileChanged(f"{arcname}: source ended after {size - left} of {size} bytes")
        digest.update(data)
        sink(data)
        left -= len(data)
        if progress is not None:
            progress(len(data))
    return Member(arcname, size, digest.hexdigest())


def check_members(
    events: Iterable[Entry | bytes | memoryview],
    expected: Sequence[Member],
    progress: Callable[[int], None] | None,
) -> None:
    """VerifyError unless the events hold each expected member once, same size and SHA-256."""
    want = {m.arcname: m for m in expected}
    if len(want) != len(expected):
        raise ValueError("expected members must have distinct names")
    seen: set[str] = set()
    current: Member | None = None
    digest = hashlib.sha256()
    size = 0
    for event in events:
        if isinstance(event, Entry):
            _compare(current, size, digest.hexdigest())
            current = want.get(event.name)
            if current is None:
                raise VerifyError(f"{event.name}: in the archive but not expected (extra member)")
            if event.name in seen:
                raise VerifyError(f"{event.name}: stored more than once")
            seen.add(event.name)
            digest, size = hashlib.sha256(), 0
        else:
            digest.update(event)
            size += len(event)
            if progress is not None:
                progress(len(event))
    _compare(current, size, digest.hexdigest())
    missing = [m.arcname for m in expected if m.arcname not in seen]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise VerifyError(f"{missing[0]}: missing from the archive{more}")


def _compare(member: Member | None, size: int, sha256: str) -> None:
    if member is None:
        return
    if size != member.size:
        raise VerifyError(f"{member.arcname}: {size} bytes in the archive, expected {member.size}")
    if sha256 != member.sha256:
        raise VerifyError(f"{member.arcname}: SHA-256 of the archived bytes differs")
