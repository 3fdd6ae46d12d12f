"""The archive_logs action: old logs into a verified archive elsewhere, then their space freed."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from opsmedic.archive.destination import Destination, Places, open_destination
from opsmedic.archive.formats import Format
from opsmedic.archive.intents import Intent, IntentJournal
from opsmedic.archive.openfiles import held_open, held_open_notes, scan_open
from opsmedic.archive.pipeline import (
    ArchiveFailed,
    Cancelled,
    Control,
    Recovered,
    Written,
    archive_name,
    in_thread,
    reason,
    recover_pending,
    write_archive,
)
from opsmedic.archive.rotate import RotateParams, rotate
from opsmedic.archive.select import Candidate, FileSelection, Rules, Selection, Skip, listed, select
from opsmedic.archive.space import free_by_device, freed, megabytes
from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Duration
from opsmedic.errors import OpsmedicError
from opsmedic.logs import get_logger
from opsmedic.model import Outcome
from opsmedic.paths import TemplatedPath
from opsmedic.plugins import ActionContext, ActionSpec

_LEVELS: dict[str, tuple[int, int]] = {"tar.zst": (1, 22), "tar.gz": (0, 9), "zip": (0, 9)}
_LISTED = 50  # paths listed per kind in an outcome; the counts are always complete


class Params(FileSelection):
    """Which files (dir, include, exclude…), how (format, per, level), where (`to`)."""

    min_age: Duration = Field(300.0, description="skip files modified more recently")
    skip_open_for_writing: bool = True
    include_hardlinked: bool = Field(
        False, description="also take files with several hard links (deleting frees no space)"
    )
    format: Format = "tar.zst"
    per: Literal["run", "file"] = "run"
    level: int | None = None
    to: Annotated[TemplatedPath, ConfigRef("ssh_hosts", scheme="sftp")] = Field(
        min_length=1, description="a local directory or sftp://host/path"
    )
    delete: bool = True
    max_files: int = Field(10_000, ge=1)
    max_bytes: int | None = Field(None, ge=1)
    rotate: RotateParams | None = None

    @field_validator("level")
    @classmethod
    def _level_fits_format(cls, level: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get("format")
        if level is None or fmt not in _LEVELS:  # a bad format has its own error already
            return level
        low, high = _LEVELS[fmt]
        if not low <= level <= high:
            raise ValueError(f"level {level} is out of range for {fmt} ({low}-{high})")
        return level


@dataclass(slots=True)
class ArchiveReport:
    """Everything one run did or, with dry_run, would do; the CLI prints it, run() records it."""

    destination: str
    dirs: list[str] = field(default_factory=list)
    dry_run: bool = False
    selection: Selection = field(default_factory=Selection)
    archives: list[Written] = field(default_factory=list)
    recovered: list[Recovered] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # recovery and rotation problems
    rotated: list[str] = field(default_factory=list)
    lossy: bool = False  # copytruncate rotation ran
    error: str | None = None
    timed_out: bool = False
    bytes_freed: int = 0
    held_open: list[dict[str, Any]] = field(default_factory=list)
    durations_ms: dict[str, float] = field(default_factory=dict)

    @property
    def bytes_in(self) -> int:
        return sum(m.size for w in self.archives for m in w.members)

    @property
    def bytes_out(self) -> int:
        return sum(w.bytes_out for w in self.archives)

    @property
    def deleted(self) -> list[str]:
        return [str(c.path) for w in self.archives if w.deletion for c in w.deletion.deleted]

    @property
    def kept(self) -> list[Skip]:
        """Selected files left in place: changed while being read (left out) or since."""
        return [
            s for w in self.archives for s in w.dropped + (w.deletion.kept if w.deletion else [])
        ]


async def archive(
    params: Params,
    places: Places,
    host: str,
    *,
    time_limit: float,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    log: Any = None,
    now: Callable[[], float] = time.time,
) -> ArchiveReport:
    """One archive run: recover, rotate, select, archive, delete, measure (or only plan).

    `progress` receives byte counts: input read while writing, then again while verifying;
    `on_total` gets their sum once the files are selected (twice the selected bytes).
    """
    started = time.monotonic()
    log = log or get_logger(action="archive_logs")
    control = Control(started + time_limit, progress=progress)
    dirs = _dirs(params, places)
    report = ArchiveReport(params.to, [str(d) for d in dirs], dry_run)
    rules = Rules(
        params.include, params.exclude, params.recursive, params.min_age,
        params.skip_open_for_writing, params.max_files, params.max_bytes,
        utf8_names=params.format == "zip", include_hardlinked=params.include_hardlinked,
    )  # fmt: skip
    if dry_run:
        report.selection = await in_thread(
            control, select, dirs, rules, now(), frozenset(), scan_open
        )
        if params.rotate is not None:
            report.warnings.append("a dry-run does not rotate: the live logs are not in this plan")
        return report
    journal = IntentJournal(places.state_dir)
    async with journal.locked(control.deadline):
        report.recovered, report.warnings = await recover_pending(journal, places, control)
        for r in report.recovered:
            log.info("archive.recovered", archive=r.name, outcome=r.action, message=r.message)
        fresh = await _rotate(params, dirs, now(), report, control)
        report.selection = await in_thread(control, select, dirs, rules, now(), fresh, scan_open)
        report.durations_ms["select"] = _ms(started)
        if report.selection.problems or not report.selection.candidates:
            return report
        if on_total is not None:
            on_total(2 * sum(c.identity.size for c in report.selection.candidates))
        try:
            dest = await open_destination(params.to, places)
        except (OSError, OpsmedicError) as exc:
            report.error = f"destination {params.to}: {reason(exc)}"
            return report
        report.destination = dest.label
        started_archive = time.monotonic()
        try:
            await in_thread(
                control, _archive_batches, params, host, dest, journal, report, control, now()
            )
        finally:
            await asyncio.to_thread(dest.close)
    report.durations_ms["archive"] = _ms(started_archive)
    report.durations_ms["total"] = _ms(started)
    return report


def _archive_batches(
    params: Params,
    host: str,
    dest: Destination,
    journal: IntentJournal,
    report: ArchiveReport,
    control: Control,
    now: float,
) -> None:
    """Each archive in turn (one, or one per file) until done or one fails; blocking."""
    files = report.selection.candidates
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")

    def intent(label: str, batch: list[Candidate]) -> Intent:
        name = archive_name(host, label, stamp, params.format, secrets.token_hex(4))
        return Intent(name, params.to, params.format, params.delete, batch)

    if params.per == "run":
        batches = [intent("+".join(Path(d).name or "root" for d in params.dir), files)]
    else:
        batches = [intent(c.path.name, [c]) for c in files]
    parents = {c.path.parent for c in files}
    before = free_by_device(parents)
    for batch in batches:
        try:
            report.archives.append(write_archive(dest, journal, batch, params.level, control))
        except Cancelled as exc:
            report.error, report.timed_out = str(exc), True
            break
        except ArchiveFailed as exc:
            report.error = str(exc)
            break
        except (OSError, OpsmedicError) as exc:
            report.error = (
                f"{batch.name}: verified, then interrupted at its commit ({reason(exc)}); the next "
                "run's recovery finishes or undoes it"
            )
            break
    gained = freed(before, free_by_device(parents))
    report.bytes_freed = sum(max(n, 0) for n in gained.values())
    report.held_open = _held_open(report.archives)


def _held_open(archives: list[Written]) -> list[dict[str, Any]]:
    """Deleted files whose space a process still holds (it keeps writing to the old inode)."""
    return held_open(
        {
            (c.identity.dev, c.identity.ino): str(c.path)
            for w in archives
            if w.deletion
            for c in w.deletion.deleted
        }
    )


async def _rotate(
    params: Params, dirs: list[Path], now: float, report: ArchiveReport, control: Control
) -> frozenset[Path]:
    if params.rotate is None:
        return frozenset()
    when = datetime.fromtimestamp(now, UTC)
    rotated: set[Path] = set()
    for d in dirs:
        # Resolved as the selection walks it, so the rotated paths compare equal there.
        real = Path(await asyncio.to_thread(os.path.realpath, d))
        result = await in_thread(control, rotate, real, params.rotate, when)
        rotated.update(result.rotated)
        report.warnings.extend(result.messages)
        report.lossy = report.lossy or result.lossy
    report.rotated = sorted(map(str, rotated))
    return frozenset(rotated)


def _dirs(params: Params, places: Places) -> list[Path]:
    """Relative to opsmedic.yaml's directory, as every path a rule names."""
    return [places.base_dir / Path(d).expanduser() for d in params.dir]


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


async def run(params: Params, ctx: ActionContext) -> Outcome:
    try:
        report = await archive(
            params,
            ctx,
            socket.gethostname(),
            dry_run=ctx.dry_run,
            log=ctx.log,
            time_limit=ctx.timeout,
            now=ctx.clock.now,
        )
    except (OSError, OpsmedicError) as exc:  # state_dir unwritable, another run holds the lock
        return Outcome(
            ok=False,
            message=f"archive run failed: {reason(exc)}",
            details={"destination": params.to},
        )
    return outcome_of(report)


def outcome_of(report: ArchiveReport) -> Outcome:
    """The recorded outcome: ok only if every selected file ended verified in an archive."""
    sel = report.selection
    details: dict[str, Any] = {
        "destination": report.destination,
        "files_skipped_count": len(sel.skipped),
        "files_skipped": listed(sel.skipped, _LISTED),
        "recovered": [
            {"archive": r.name, "action": r.action, "message": r.message} for r in report.recovered
        ],
        "warnings": report.warnings,
    }
    if report.rotated or report.lossy:
        details.update(rotated=report.rotated, lossy=report.lossy)
    if sel.problems:
        return Outcome(ok=False, message="; ".join(sel.problems), details=details)
    if report.dry_run:
        details.update(dry_run=True, **sel.would("archive", _LISTED))
        message = (
            f"dry-run: would archive {len(sel.candidates)} files ({megabytes(sel.total_bytes)}) "
            f"to {report.destination}; {len(sel.skipped)} skipped"
        )
        return Outcome(ok=True, message=message, details=details)
    if not sel.candidates and report.error is None:
        why = _nothing_to_do(report)
        return Outcome(
            ok=True, message=f"nothing to archive: {why}", details={**details, "skipped": why}
        )
    kept = report.kept
    details.update(
        archives=[w.name for w in report.archives],
        files_archived=sum(len(w.members) for w in report.archives),
        bytes_in=report.bytes_in,
        bytes_out=report.bytes_out,
        ratio=round(report.bytes_in / report.bytes_out, 2) if report.bytes_out else None,
        files_deleted=len(report.deleted),
        kept=listed(kept, _LISTED),
        bytes_freed=report.bytes_freed,
        held_open=report.held_open,
        durations_ms=report.durations_ms,
    )
    if report.error is not None:
        details["timed_out"] = report.timed_out
        done = f" ({len(report.archives)} archives done before it)" if report.archives else ""
        return Outcome(ok=False, message=report.error + done, details=details)
    message = (
        f"archived {details['files_archived']} files ({megabytes(report.bytes_in)} → "
        f"{megabytes(report.bytes_out)}) to {report.destination}; "
        f"freed {megabytes(report.bytes_freed)}"
    )
    extras = [f"{len(kept)} kept (changed while read)"] if kept else []
    extras += [f"{len(sel.skipped)} skipped"] if sel.skipped else []
    extras += held_open_notes(report.held_open)
    extras += ["copytruncate rotation is lossy"] if report.lossy else []
    extras += [f"warning: {w}" for w in report.warnings[:2]]
    return Outcome(ok=True, message="; ".join([message, *extras]), details=details)


def _nothing_to_do(report: ArchiveReport) -> str:
    sel = report.selection
    if sel.matched == 0:
        return f"no file in {', '.join(report.dirs)} matches include"
    reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in sel.skipped[:3])
    return f"{sel.matched} files match, none can be archived now ({reasons})"


ACTION = ActionSpec(
    name="archive_logs",
    params=Params,
    run=run,
    idempotent=True,
    destructive=True,
    summary="archive old logs (verified, crash-safe) locally or over SFTP, then delete them",
)
