"""The hunt's vocabulary: its options, the events it reports and the report itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Mode = Literal["exact", "masked", "template"]
MODES: tuple[Mode, ...] = ("exact", "masked", "template")
DEFAULT_PATTERN = "ERROR|FATAL|CRITICAL|Traceback|panic"
LineKind = Literal["match", "event", "context"]


@dataclass(frozen=True, slots=True)
class HuntOptions:
    """What to look for and the bounds of the search; the defaults suit an alert's hunt."""

    pattern: str = DEFAULT_PATTERN  # matched on word boundaries: \b(?:pattern)\b
    context: int = 3  # lines before and after each event
    mode: Mode = "masked"
    since: datetime | None = None  # aware (UTC); lines without a timestamp are kept
    until: datetime | None = None
    max_events: int = 1000  # distinct events reported with their lines; the rest only counted
    max_lines: int = 20_000  # lines of output over all reported events
    max_keys: int = 100_000  # distinct keys counted at once; past it the oldest unreported go
    max_key_bytes: int = 48 << 20  # and their bytes (tally.py): a key is at most ~1.6 KB
    max_event_lines: int = 500  # a longer traceback is cut there (and still counted once)
    max_line_bytes: int = 8192  # a longer line is shown cut; a line without \n is split at 1 MiB
    time_budget_s: float | None = None
    chunk_bytes: int = 4 << 20
    # Processes for one big plain file (0: one per CPU). One here (the loghunt action runs in
    # the daemon: it never forks); the CLI takes two when a core is idle (parallel.auto_workers).
    workers: int = 1
    ripgrep: bool = True  # use rg as a prefilter where installed and it can serve (prefilter.py)
    parallel_bytes: int = 64 << 20  # a plain file this big is split between the workers


@dataclass(frozen=True, slots=True)
class Line:
    """One line of output: where it is in its source and what it says."""

    source: str
    number: int  # 1-based, in the (decompressed) source
    text: str
    kind: LineKind  # match: the line that matched; event: its continuation; context: around it


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where (and, when its line carries a timestamp, when) an event was seen."""

    source: str
    line: int
    time: datetime | None


@dataclass(frozen=True, slots=True)
class HuntEvent:
    """One distinct event: its first occurrence whole, with context, and how often it came."""

    key: str  # the normalized text duplicates are judged on (masked: variables as <*>;
    # template: the final template of the matching line's cluster)
    count: int
    first: Sighting
    last: Sighting
    lines: tuple[Line, ...]
    cut: bool  # the event was longer than max_event_lines: its first lines only
    # Lines of the first occurrence (with its context) not shown for max_lines: the first
    # event reported alone can be longer than them, and is shown cut to them, from its match.
    lines_left_out: int = 0


@dataclass(slots=True)
class HuntStats:
    """What the hunt read and what it left out, so that nothing is dropped silently."""

    sources: list[str] = field(default_factory=list)
    bytes_read: int = 0
    lines_read: int = 0
    occurrences: int = 0  # events found (every duplicate counted) inside the window
    outside_window: int = 0  # events found whose timestamp is outside --since/--until
    unreported_events: int = 0  # distinct events past max_events / max_lines (counted only)
    unreported_occurrences: int = 0
    evicted_keys: int = 0  # keys dropped from the full table: their later duplicates recount
    evicted_occurrences: int = 0  # the occurrences those keys had counted when they went
    evicted_templates: int = 0  # template mode: clusters dropped (drain.py), as evicted_keys
    split_lines: int = 0  # lines longer than 1 MiB without a newline, split to stay bounded
    notes: list[str] = field(default_factory=list)  # truncated, rotated, unreadable, corrupt
    stopped: str | None = None  # why the hunt stopped early (time budget), None if complete
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class HuntReport:
    """The outcome of one hunt: events in order of first occurrence, and the stats."""

    events: tuple[HuntEvent, ...]
    stats: HuntStats
    options: HuntOptions
