"""The hunt: sources in order, their events found, windowed, keyed and tallied into a report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opsmedic.errors import HuntInputError
from opsmedic.loghunt.archives import ArchiveSource, each_source
from opsmedic.loghunt.drain import Cluster, Drain
from opsmedic.loghunt.keys import shown
from opsmedic.loghunt.levels import LevelMatcher
from opsmedic.loghunt.model import MODES, HuntEvent, HuntOptions, HuntReport, HuntStats, Sighting
from opsmedic.loghunt.parallel import hunt_in_parallel
from opsmedic.loghunt.prefilter import ripgrep_hits
from opsmedic.loghunt.reading import Pass
from opsmedic.loghunt.scanner import Scanner
from opsmedic.loghunt.sources import Source, open_files
from opsmedic.loghunt.tally import Entry, Seen, Tally
from opsmedic.loghunt.timestamps import Near, line_time

KEY_CHARS = 400  # of a key, in the report


def hunt_paths(
    paths: Sequence[str],
    options: HuntOptions,
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    templates: Drain | None = None,
) -> HuntReport:
    """Hunt the files and globs in `paths` (see sources.open_files)."""
    check(options)
    sources, notes = open_files(paths)
    try:
        report = hunt(sources, options, progress=progress, clock=clock, templates=templates)
    finally:
        for source in sources:
            source.close()
    report.stats.notes[:0] = notes
    return report


def check(options: HuntOptions) -> None:
    """Refuse options that cannot be hunted with, naming the option (HuntInputError)."""
    if options.mode not in MODES:
        raise HuntInputError(f"--mode {options.mode!r}: use {' or '.join(MODES)}")
    counts = ("max_events", "max_lines", "max_keys", "max_key_bytes", "max_event_lines")
    for name in ("context", *counts):
        value = getattr(options, name)
        floor = 0 if name == "context" else 1
        if value < floor:
            raise HuntInputError(f"--{name.replace('_', '-')} {value}: at least {floor}")
    if options.since and options.until and options.since > options.until:
        raise HuntInputError("--since is after --until")
    LevelMatcher(options.pattern)


def hunt(
    sources: Sequence[Source | ArchiveSource],
    options: HuntOptions,
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    templates: Drain | None = None,
) -> HuntReport:
    """Read every source (an archive: each member) once, in order, and report its distinct
    events in order of first occurrence; deterministic for the same input (the clock only
    bounds the time spent).
    A big plain file is read by several processes at once (parallel.py), with the same result.
    Template mode clusters into `templates` (learning: a state to save), or into new ones."""
    check(options)
    stats = HuntStats(sources=[])
    tally = Tally(options, stats.sources, stats)
    started = clock()
    if options.mode != "template":
        pass_ = _read(sources, options, Pass(options, tally, stats, progress, clock, started))
        shown_as = {k: k for k in tally.reported}
    else:
        drain = Drain() if templates is None else templates
        with _Templates(drain, tally) as named:
            pass_ = _read(sources, options, Pass(options, tally, stats, progress, clock, started,
                                                 drain))  # fmt: skip
        stats.evicted_templates = named.evicted
        shown_as = named.texts()
    stats.seconds = clock() - started
    events = tuple(
        _event(shown_as[k], e, stats.sources, pass_.near) for k, e in tally.reported.items()
    )
    return HuntReport(events=events, stats=stats, options=options)


class _Templates:
    """While a hunt runs: the last template of each reported cluster Drain evicts, so that the
    report still shows it; after: every reported key's final template, and evictions."""

    def __init__(self, drain: Drain, tally: Tally) -> None:
        self.drain, self.tally = drain, tally
        self.retired: dict[bytes, bytes] = {}
        self.before = drain.evicted
        self.evicted = 0

    def __enter__(self) -> _Templates:
        self.drain.on_evict = self._retire
        return self

    def __exit__(self, *_: object) -> None:
        self.drain.on_evict = None
        self.evicted = self.drain.evicted - self.before

    def _retire(self, cluster: Cluster) -> None:
        key = b"%d" % cluster.id
        if key in self.tally.reported:
            self.retired[key] = cluster.text()

    def texts(self) -> dict[bytes, bytes]:
        live = self.drain.clusters
        return {k: self.retired.get(k) or live[int(k)].text() for k in self.tally.reported}


def _read(sources: Sequence[Source | ArchiveSource], options: HuntOptions, pass_: Pass) -> Pass:
    stats = pass_.stats
    # An archive's members are named as they come (a tar lists them only as it is read).
    for source in each_source(sources, stats.notes):
        index = len(stats.sources)
        stats.sources.append(source.name)
        if not hunt_in_parallel(source, index, pass_):
            finder = (
                ripgrep_hits(source, pass_.matcher, pass_.deadline, pass_.clock)
                if options.ripgrep
                else None
            )
            try:
                pass_.scan(source, index, Scanner(finder or pass_.matcher, options.context,
                                                  options.max_event_lines))  # fmt: skip
            finally:
                if finder is not None:
                    finder.close()
        stats.notes.extend(source.notes)
        if stats.stopped:
            break
    return pass_


def _event(key: bytes, entry: Entry, names: list[str], around: Near) -> HuntEvent:
    assert entry.lines is not None
    text = shown(key).rstrip("\n")
    return HuntEvent(
        key=text if len(text) <= KEY_CHARS else text[:KEY_CHARS] + "…",
        count=entry.count,
        first=_sighting(entry.first, names, around),
        last=_sighting(entry.last, names, around),
        lines=entry.lines,
        cut=entry.cut,
        lines_left_out=entry.left_out,
    )


def _sighting(seen: Seen, names: list[str], around: Near) -> Sighting:
    source, line, head = seen
    return Sighting(names[source], line, line_time(head, around))
