"""Which files an archive run may take: include/exclude globs, never a symlink, never outside."""

from __future__ import annotations

import heapq
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsmedic.archive.openfiles import Holder
from opsmedic.paths import TemplatedPath, TemplatedRelativePath, not_blank

# Names this module's pipeline gives archives (host-label-UTC[-run].ext[.part]): a log
# directory that is also the destination must never feed its own archives back in.
OUR_ARCHIVE = re.compile(r"-\d{8}T\d{6}Z-[0-9a-f]{8}\.(?:tar\.zst|tar\.gz|zip)(?:\.part)?$")
_MOUNT_POINT = "a mount point (another filesystem or a bind mount): never entered or taken"
# openfiles.scan_open, or a stand-in: (st_dev, st_ino) → the processes holding that file.
OpenScanner = Callable[[set[tuple[int, int]]], Mapping[tuple[int, int], Sequence[Holder]]]


class FileSelection(BaseModel):
    """The parameters that name files in directories, shared by archive_logs and cleanup."""

    model_config = ConfigDict(extra="forbid")

    dir: list[TemplatedPath] = Field(min_length=1, description="a directory, or a list of them")
    include: list[TemplatedRelativePath] = Field(
        min_length=1, description="globs on the name relative to dir"
    )
    exclude: list[TemplatedRelativePath] = Field(default_factory=list)
    recursive: bool = False

    @field_validator("dir", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("dir", "include", "exclude")
    @classmethod
    def _not_blank(cls, values: list[str]) -> list[str]:
        return not_blank(values)


@dataclass(frozen=True, slots=True)
class Identity:
    """What proves a file is the one that was read: same inode, same size, same mtime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file chosen for archiving: its real path, its name in the archive, its identity."""

    path: Path
    arcname: str
    identity: Identity
    mode: int


@dataclass(frozen=True, slots=True)
class Skip:
    path: str
    reason: str


@dataclass(slots=True)
class Selection:
    """What a run would do: candidates (oldest first) and every file left alone, with why."""

    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    # Directories that cannot be read at all; the run fails on any of them.
    problems: list[str] = field(default_factory=list)
    matched: int = 0  # files an include named, before age, open-file and bound checks
    entries: int = 0  # entries the walk looked at
    incomplete: str | None = None  # why the walk stopped before the end, if it did

    @property
    def total_bytes(self) -> int:
        return sum(c.identity.size for c in self.candidates)

    def would(self, verb: str, limit: int) -> dict[str, object]:
        """The plan as an outcome's details: would_<verb>_count, _bytes, the first paths."""
        return {
            f"would_{verb}_count": len(self.candidates),
            f"would_{verb}_bytes": self.total_bytes,
            f"would_{verb}": [str(c.path) for c in self.candidates[:limit]],
        }


def listed(skips: Sequence[Skip], limit: int) -> list[dict[str, str]]:
    """The first `limit` files left alone, with their reasons, as an outcome lists them."""
    return [{"path": s.path, "reason": s.reason} for s in skips[:limit]]


@dataclass(frozen=True, slots=True)
class Rules:
    """The selection parameters, already validated by the action's Params."""

    include: Sequence[str]
    exclude: Sequence[str] = ()
    recursive: bool = False
    min_age: float = 300.0
    skip_open_for_writing: bool = True
    max_files: int = 10_000
    max_bytes: int | None = None
    # zip stores names as UTF-8 only; tar's PAX headers keep any bytes.
    utf8_names: bool = False
    include_hardlinked: bool = False
    max_entries: int | None = None  # entries walked at most; the walk stops there, incomplete
    # A last say on each file that passed the rest (cleanup's protection), before the bound.
    veto: Callable[[Path, int], str | None] | None = None


def select(
    dirs: Sequence[Path],
    rules: Rules,
    now: float,
    fresh: frozenset[Path] = frozenset(),
    scan_open: OpenScanner | None = None,
    stop: Callable[[], str | None] = lambda: None,
) -> Selection:
    """Walk `dirs` (absolute) and choose files; blocking (lstat, /proc), so run in a thread.

    `fresh` are files just rotated: they skip `min_age` but not the open-for-writing check.
    `scan_open` maps (st_dev, st_ino) to the processes holding them (openfiles.scan_open).
    `stop` (asked as the walk goes) says why to stop now (a deadline, a cancel), or None.
    Only the oldest `max_files` are held while walking (a heap), however many match.
    """
    sel = Selection()
    found = _Oldest(rules.max_files, sel.skipped)
    seen: set[Path] = set()  # a directory listed twice, or inside another with recursive
    for top in dirs:
        real = _resolved_dir(top, sel.problems) if sel.incomplete is None else None
        if real is None:
            continue
        for rel, path, st in _walk(real, top, rules, sel, stop):
            if path in seen or not _included(rel, rules):
                continue
            seen.add(path)
            sel.matched += 1
            why = _refusal(path, st, real) or _unfit(path, st, rules)
            if why is None and path not in fresh and now - st.st_mtime < rules.min_age:
                why = f"modified {max(now - st.st_mtime, 0):.0f}s ago (min_age {rules.min_age:g}s)"
            if why is None and rules.veto is not None:
                why = rules.veto(path, st.st_mode)
            if why is not None:
                sel.skipped.append(Skip(str(path), why))
                continue
            found.add(Candidate(path, str(path).lstrip("/"), Identity.of(st), st.st_mode))
    chosen = found.oldest_first()
    if rules.skip_open_for_writing and chosen and scan_open is not None:
        chosen = _not_open_for_writing(chosen, scan_open, sel.skipped)
    _bounded(chosen, rules, sel)
    return sel


@dataclass(slots=True)
class _Newest:
    """A heap item ordered newest first, so the heap's top is the one to drop."""

    key: tuple[int, str]
    candidate: Candidate

    def __lt__(self, other: _Newest) -> bool:
        return self.key > other.key


@dataclass(slots=True)
class _Oldest:
    """The oldest `limit` candidates seen; each one pushed out is skipped with why."""

    limit: int
    skipped: list[Skip]
    heap: list[_Newest] = field(default_factory=list)

    def add(self, c: Candidate) -> None:
        item = _Newest((c.identity.mtime_ns, str(c.path)), c)
        if len(self.heap) < self.limit:
            heapq.heappush(self.heap, item)
            return
        if self.heap and item.key < self.heap[0].key:
            item = heapq.heapreplace(self.heap, item)
        self.skipped.append(
            Skip(str(item.candidate.path), f"over max_files ({self.limit}) this run")
        )

    def oldest_first(self) -> list[Candidate]:
        return [item.candidate for item in sorted(self.heap, key=lambda i: i.key)]


def _resolved_dir(top: Path, problems: list[str]) -> Path | None:
    """The directory's real path, or None with the reason added to `problems`."""
    try:
        real = Path(os.path.realpath(top, strict=True))
        st = os.stat(real)
    except FileNotFoundError:
        problems.append(f"{top}: directory does not exist")
        return None
    except OSError as exc:
        problems.append(f"{top}: {exc.strerror or exc}")
        return None
    if not stat.S_ISDIR(st.st_mode):
        problems.append(f"{top}: not a directory")
        return None
    return real


def mount_points() -> frozenset[str]:
    """Every mount point on this host (/proc/self/mountinfo), bind mounts included."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            # Field 5 is the mount point, with space, tab, newline and backslash as \ooo.
            return frozenset(
                re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
                for line in f
                if len(line.split()) > 4
            )
    except OSError:
        return frozenset()


def _walk(
    root: Path, top: Path, rules: Rules, sel: Selection, stop: Callable[[], str | None]
) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(name relative to root, path, lstat) of every entry on root's own filesystem.

    Symlinked dirs are never entered, and neither is a mount point: another filesystem, or
    a bind mount of the same one (same st_dev, so only the mount table tells), would let a
    file outside the root be taken through a path inside it.
    """
    mounts = mount_points()
    dev = os.stat(root).st_dev
    pending = [root]
    while pending:
        here = pending.pop()
        try:
            with os.scandir(here) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            if here == root:
                sel.problems.append(f"{top}: directory is not readable: {exc.strerror or exc}")
            else:
                sel.skipped.append(Skip(str(here), f"cannot list: {exc.strerror or exc}"))
            continue
        for entry in listed:
            sel.entries += 1
            if rules.max_entries is not None and sel.entries > rules.max_entries:
                sel.incomplete = f"walk stopped at max_entries ({rules.max_entries})"
                return
            why = stop()
            if why is not None:
                sel.incomplete = f"walk {why} after {sel.entries - 1} entries"
                return
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since listing: nothing to archive
            if st.st_dev != dev or entry.path in mounts:
                sel.skipped.append(Skip(entry.path, _MOUNT_POINT))
                continue
            if rules.recursive and stat.S_ISDIR(st.st_mode):
                pending.append(path)
                continue
            yield str(path.relative_to(root)), path, st


def _included(rel: str, rules: Rules) -> bool:
    if OUR_ARCHIVE.search(rel):
        return False
    if not any(fnmatchcase(rel, pattern) for pattern in rules.include):
        return False
    return not any(fnmatchcase(rel, pattern) for pattern in rules.exclude)


def _refusal(path: Path, st: os.stat_result, root: Path) -> str | None:
    """Why a matching entry is not a file we may take, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "symlink (never followed)"
    if stat.S_ISDIR(st.st_mode):
        return "directory (recursive is off)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    # The walk never follows links, so this only fails if a parent was swapped meanwhile.
    if not Path(os.path.realpath(path)).is_relative_to(root):
        return f"resolves outside {root}"
    if not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    return None


def _unfit(path: Path, st: os.stat_result, rules: Rules) -> str | None:
    """Why a file we may take is left alone under these rules, or None.

    Each is one file's matter: skipped with its reason, so the rest still frees the disk.
    """
    if st.st_nlink > 1 and not rules.include_hardlinked:
        return (
            f"{st.st_nlink} hard links: another name keeps the data, so deleting this one frees "
            "no space (include_hardlinked: true archives it anyway)"
        )
    if rules.utf8_names:
        try:
            str(path).encode()
        except UnicodeEncodeError:
            return "name is not valid UTF-8, which zip cannot store (tar.zst or tar.gz can)"
    return None


def _not_open_for_writing(
    found: list[Candidate], scan_open: OpenScanner, skipped: list[Skip]
) -> list[Candidate]:
    holders = scan_open({(c.identity.dev, c.identity.ino) for c in found})
    kept: list[Candidate] = []
    for c in found:
        writers = [h for h in holders.get((c.identity.dev, c.identity.ino), ()) if h.writing]
        if writers:
            who = ", ".join(f"pid {h.pid} ({h.command})" for h in writers)
            skipped.append(Skip(str(c.path), f"open for writing by {who}"))
        else:
            kept.append(c)
    return kept


def _bounded(found: list[Candidate], rules: Rules, sel: Selection) -> None:
    """Oldest first until `max_files` or `max_bytes`; the rest wait for the next run."""
    total = 0
    for c in found:
        if len(sel.candidates) >= rules.max_files:
            sel.skipped.append(Skip(str(c.path), f"over max_files ({rules.max_files}) this run"))
        elif rules.max_bytes is not None and total + c.identity.size > rules.max_bytes:
            sel.skipped.append(Skip(str(c.path), f"over max_bytes ({rules.max_bytes}) this run"))
        else:
            sel.candidates.append(c)
            total += c.identity.size
