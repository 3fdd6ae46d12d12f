"""The loghunt action: the error events of an alert's logs, each once with its count, on its run."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsmedic.actions.loghunt_result import hunt_outcome
from opsmedic.actions.loghunt_sources import (
    CommandParams,
    JournalParams,
    in_thread,
    running_sources,
)
from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Duration, PositiveDuration
from opsmedic.errors import HuntInputError
from opsmedic.model import Outcome
from opsmedic.paths import TemplatedFileGlob, not_blank
from opsmedic.plugins import ActionContext, ActionSpec
from opsmedic.templating import UnsafeTemplate, is_template

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opsmedic.actions.loghunt_sources import Running
    from opsmedic.loghunt import FileSource, HuntOptions
    from opsmedic.loghunt.archives import ArchiveSource

# The hunt's own default (loghunt.DEFAULT_PATTERN, tested equal): the machinery
# is imported only when a hunt is validated or runs, not by every registry build.
DEFAULT_PATTERN = "ERROR|FATAL|CRITICAL|Traceback|panic"
SNIFF_BYTES = 8192  # of a plain file, looked at for NUL bytes (as grep judges "binary")


class Params(BaseModel):
    """Which logs (`files`, `commands`, `journal`, at least one; `ssh` runs the commands and
    the journal on a host), what to look for, the window before the alert and the bounds of
    the report."""

    model_config = ConfigDict(extra="forbid")

    files: list[TemplatedFileGlob] = Field(
        default_factory=list, description="log files or globs (rotated .1, .gz, .zst included)"
    )
    commands: list[CommandParams] = Field(
        default_factory=list, description="commands whose stdout is a log (argv, no shell)"
    )
    journal: list[JournalParams] = Field(
        default_factory=list, description="units whose systemd journal is a log"
    )
    ssh: Annotated[str | None, ConfigRef("ssh_hosts")] = Field(
        None, description="an ssh_hosts entry: commands and journal run there (files stay local)"
    )
    pattern: str = Field(DEFAULT_PATTERN, description="regex of the levels, on word boundaries")
    context: int = Field(3, ge=0, le=100, description="lines before and after each event")
    mode: str = Field("masked", description="how duplicates are judged: masked or exact")
    before: Duration = Field(
        900.0,
        ge=0,
        le=3650 * 86400,  # 10 years; unbounded, 1000000d (before year 1) crashed the step
        description="the window opens this long before the incident's first event",
    )
    max_events: int = Field(1000, ge=1, le=100_000, description="distinct events reported")
    max_lines: int = Field(20_000, ge=1, le=1_000_000, description="lines of the report at most")
    time_budget: PositiveDuration | None = Field(
        None, description="seconds at most (never more than the step's timeout)"
    )
    top: int = Field(5, ge=1, le=50, description="distinct errors in the summary")

    @field_validator("files", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("files")
    @classmethod
    def _not_blank(cls, values: list[str]) -> list[str]:
        return not_blank(values)

    @field_validator("pattern", mode="before")
    @classmethod
    def _pattern_compiles(cls, value: Any) -> Any:
        if isinstance(value, str) and is_template(value):
            # A regex an event chose could backtrack for ever in a thread nothing can stop.
            raise UnsafeTemplate("a pattern is written in the rule, never taken from an event")
        if isinstance(value, str):
            from opsmedic.loghunt.levels import LevelMatcher

            try:
                LevelMatcher(value)
            except HuntInputError as exc:
                raise ValueError(str(exc).removeprefix(f"--pattern {value!r}: ")) from None
        return value

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        from opsmedic.loghunt import MODES  # the template mode joins MODES, and so this list

        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}: use {' or '.join(MODES)}")
        return value

    @model_validator(mode="after")
    def _some_source(self) -> Params:
        if not (self.files or self.commands or self.journal):
            raise ValueError("give at least one source: files, commands or journal")
        if self.ssh is not None and not (self.commands or self.journal):
            raise ValueError("ssh runs commands and journal on a host (files stay local): "
                             "give one of them")  # fmt: skip
        return self


def window_start(params: Params, ctx: ActionContext) -> datetime | None:
    """`before` ahead of the incident's first event, else of the triggering event; None when
    the run has neither (a hunt of everything)."""
    start = ctx.incident_opened_at if ctx.incident_opened_at is not None else ctx.event_time
    if start is None:
        return None
    return datetime.fromtimestamp(start - params.before, UTC)


# Of the step's timeout, what the hunt may spend: the rest is for reading its report out
# (rendering a large one takes a while) before the engine gives up on the step.
BUDGET_SHARE = 0.8


def budget(params: Params, ctx: ActionContext) -> float:
    """The hunt's time budget: `time_budget`, never more than 80 % of the step's timeout, so
    that it stops itself and reports what it found before the engine gives up on the step
    (a worker thread cannot be cancelled)."""
    cap = ctx.timeout * BUDGET_SHARE
    return min(params.time_budget or cap, cap)


def options_of(params: Params, since: datetime | None, budget: float) -> HuntOptions:
    from opsmedic.loghunt import HuntOptions

    return HuntOptions(
        pattern=params.pattern,
        context=params.context,
        mode=params.mode,  # type: ignore[arg-type]  # checked against MODES above
        since=since,
        max_events=params.max_events,
        max_lines=params.max_lines,
        time_budget_s=budget,
        # Forking from the engine's worker thread would copy its event loop and locks.
        workers=1,
    )


def _paths(params: Params, base_dir: Path) -> list[str]:
    """Relative to opsmedic.yaml's directory, as every path a rule names."""
    return [str(base_dir / Path(f).expanduser()) for f in params.files]


def _binary_notes(sources: Sequence[FileSource | ArchiveSource]) -> list[str]:
    """A note for each plain file whose first bytes hold NUL: it is hunted all the same (a
    log with garbage in it is still a log), and the step's message says so. Archives and
    compressed files are binary by nature: their members are what is read."""
    from opsmedic.loghunt import FileSource

    notes = []
    for source in sources:
        if not isinstance(source, FileSource) or source.path.suffix in (".gz", ".zst"):
            continue
        try:
            head = os.pread(source.raw.fileno(), SNIFF_BYTES, 0)
        except OSError:  # an I/O error: the hunt itself says what it could not read
            continue
        if b"\0" in head:
            notes.append(f"{source.name}: binary data (NUL bytes in its first {SNIFF_BYTES:,} "
                         "bytes), read as bytes")  # fmt: skip
    return notes


def _hunt(
    paths: list[str], running: Sequence[Running], options: HuntOptions, stop: threading.Event
) -> tuple[Any, list[str]]:
    """Open and hunt (blocking, on a worker thread): the report and the binary-file notes.
    Every source is closed at the end whatever happens (a command's process group killed);
    `stop` set (the step given up on) ends the hunt at its next block."""
    from opsmedic.loghunt import hunt, open_files

    files: list[FileSource | ArchiveSource] = []
    notes: list[str] = []
    try:
        if paths:
            files, notes = open_files(paths)
        binary = _binary_notes(files)
        report = hunt([*files, *running], options, clock=lambda: _now(stop))
    finally:
        for source in [*files, *running]:
            source.close()
    report.stats.notes[:0] = notes
    return report, binary


def _now(stop: threading.Event) -> float:
    """The hunt's clock: past any budget once `stop` is set, so it stops where it is."""
    return math.inf if stop.is_set() else time.monotonic()


def _would_read(paths: list[str]) -> list[dict[str, Any]]:
    """What a dry run names: each file the paths and globs match, with its size."""
    from opsmedic.loghunt import open_files

    if not paths:
        return []
    sources, _ = open_files(paths)
    try:
        return [{"path": s.name, "bytes": s.size} for s in sources]
    finally:
        for source in sources:
            source.close()


async def run(params: Params, ctx: ActionContext) -> Outcome:
    since = window_start(params, ctx)
    paths = _paths(params, ctx.base_dir)
    window = {"since": since.isoformat() if since else None, "until": None}
    limit = budget(params, ctx)
    try:
        running = running_sources(params.commands, params.journal, params.ssh, ctx, since, limit)
    except HuntInputError as exc:  # an ssh host no entry names (a templated one)
        return Outcome(ok=False, message=str(exc), details={"window": window})
    try:
        if ctx.dry_run:
            found = await asyncio.to_thread(_would_read, paths)
            total = sum(f["bytes"] or 0 for f in found)
            would_run = [source.name for source in running]
            runs = f" and {len(would_run)} command(s)" if would_run else ""
            message = (f"dry-run: would hunt {len(found)} file(s) ({total:,} bytes){runs} for "
                       f"{params.pattern!r} since {window['since'] or 'their start'}")  # fmt: skip
            details = {"dry_run": True, "would_read": found, "would_run": would_run,
                       "window": window}  # fmt: skip
            return Outcome(ok=True, message=message, details=details)
        started = time.monotonic()
        options = options_of(params, since, limit)
        report, binary = await in_thread(lambda stop: _hunt(paths, running, options, stop), running)
    except HuntInputError as exc:  # a missing file, a glob that matches nothing
        return Outcome(ok=False, message=f"files: {exc}", details={"window": window})
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return Outcome(ok=False, message=f"files: {where}{exc.strerror or exc}",
                       details={"window": window})  # fmt: skip
    finally:
        if ctx.dry_run:
            for source in running:
                source.close()  # never started: only their spool files to close
    ctx.log.info("loghunt.done", events=len(report.events), seconds=time.monotonic() - started)
    noun = "source" if running else "file"  # a command's output is no file
    return hunt_outcome(
        report, window, binary, top=params.top, output_limit=ctx.output_limit, noun=noun
    )


ACTION = ActionSpec(
    name="loghunt",
    params=Params,
    run=run,
    idempotent=True,
    summary="hunt an alert's logs: each error event once, with its count (read-only)",
)
