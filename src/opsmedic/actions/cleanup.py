"""The cleanup action: delete old throwaway files (temp files, core dumps) inside cleanup.roots."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from opsmedic.actions import cleanup_settings
from opsmedic.actions.cleanup_settings import CleanupConfig, system_dir_of
from opsmedic.archive.openfiles import held_open, held_open_notes, scan_open
from opsmedic.archive.pipeline import Control, in_thread
from opsmedic.archive.select import FileSelection, Rules, Selection, listed, select
from opsmedic.archive.space import free_by_device, freed, megabytes
from opsmedic.archive.sweep import Guard, Sweep, delete
from opsmedic.config.types import Duration
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec

_LISTED = 50  # paths listed per kind in an outcome; the counts are always complete


class Params(FileSelection):
    """Which files (dir inside cleanup.roots, include, exclude, min_age), how many, and whether
    to act (enforce)."""

    min_age: Duration = Field(3600.0, description="skip files modified more recently")
    max_files: int = Field(1000, ge=1, le=100_000, description="files deleted per run at most")
    max_entries: int = Field(
        1_000_000, ge=1, description="entries walked per run at most; the oldest seen are cleaned"
    )
    enforce: bool = Field(False, description="false (leashed): report what would be deleted")


@dataclass(slots=True)
class Report:
    """One run: the selection, what was deleted, and the space it gave back."""

    dirs: list[Path] = field(default_factory=list)  # real paths
    problems: list[str] = field(default_factory=list)
    selection: Selection = field(default_factory=Selection)
    sweep: Sweep = field(default_factory=Sweep)
    bytes_freed: int = 0
    stopped: str | None = None  # "timed out" or "cancelled" before the run's end
    held_open: list[dict[str, object]] = field(default_factory=list)

    @property
    def bytes_deleted(self) -> int:
        return sum(c.identity.size for c in self.sweep.deleted)


def confined(params: Params, config: CleanupConfig, base_dir: Path) -> Report:
    """The real directories, each inside a root; a directory that is not is a problem."""
    report = Report()
    roots = [Path(os.path.realpath(r)) for r in config.roots]
    for d in params.dir:
        real = Path(os.path.realpath(base_dir / Path(d).expanduser()))
        system = system_dir_of(str(real))
        inside = any(real.is_relative_to(r) and system_dir_of(str(r)) is None for r in roots)
        if not roots:
            report.problems.append(f"{d}: no cleanup.roots configured, so cleanup deletes nothing")
        elif system is not None:
            report.problems.append(f"{d}: resolves to {real}, in {system}: never cleaned")
        elif not inside:
            report.problems.append(f"{d}: resolves to {real}, outside cleanup.roots")
        else:
            report.dirs.append(real)
    return report


def plan(report: Report, params: Params, guard: Guard, now: float, control: Control) -> None:
    """Select (no symlink, old enough, not protected, not open for writing), then the bound."""
    rules = Rules(params.include, params.exclude, params.recursive, params.min_age,
                  skip_open_for_writing=True, max_files=params.max_files,
                  max_entries=params.max_entries, veto=guard.why)  # fmt: skip
    report.selection = select(report.dirs, rules, now, frozenset(), scan_open, control.stopped)
    report.problems.extend(report.selection.problems)


def sweep(report: Report, control: Control) -> None:
    """Delete the plan, measuring each filesystem's free space before and after; blocking."""
    files = report.selection.candidates
    parents = {c.path.parent for c in files}
    before = free_by_device(parents)
    for root in report.dirs:
        mine = [c for c in files if c.path.is_relative_to(root)]
        files = [c for c in files if not c.path.is_relative_to(root)]
        done = delete(root, mine, control.stopped)
        report.sweep.deleted += done.deleted
        report.sweep.kept += done.kept
        report.sweep.failed += done.failed
        report.stopped = report.sweep.stopped = done.stopped
        if done.stopped is not None:
            break
    report.bytes_freed = sum(max(n, 0) for n in freed(before, free_by_device(parents)).values())
    report.held_open = held_open(
        {(c.identity.dev, c.identity.ino): str(c.path) for c in report.sweep.deleted}
    )


def clean(
    params: Params, config: CleanupConfig, ctx: ActionContext, act: bool, control: Control
) -> Report:
    """One run, blocking: confine, plan, and (when `act`) delete, until `control` says stop."""
    report = confined(params, config, ctx.base_dir)
    if report.problems:
        return report
    guard = Guard(config.protected, Path(os.path.realpath(ctx.base_dir / ctx.state_dir)))
    plan(report, params, guard, ctx.clock.now(), control)
    if act and not report.problems and report.selection.candidates:
        sweep(report, control)
    report.stopped = report.stopped or control.stopped()
    if report.stopped is not None:
        # A cancelled run returns no outcome: the log is where what it did is told.
        ctx.log.warning("cleanup.stopped", why=report.stopped,
                        files_deleted=len(report.sweep.deleted),
                        bytes_deleted=report.bytes_deleted)  # fmt: skip
    return report


async def run(params: Params, ctx: ActionContext) -> Outcome:
    act = params.enforce and not ctx.dry_run
    # Stops itself at the step's timeout (the engine allows a grace after it to report).
    control = Control(time.monotonic() + ctx.timeout)
    report = await in_thread(control, clean, params, ctx.settings, ctx, act, control)
    return outcome_of(report, params, ctx.dry_run)


def outcome_of(report: Report, params: Params, dry_run: bool) -> Outcome:
    sel = report.selection
    details: dict[str, Any] = {
        "dirs": [str(d) for d in report.dirs],
        "enforce": params.enforce,
        "files_skipped_count": len(sel.skipped),
        "files_skipped": listed(sel.skipped, _LISTED),
    }
    if report.problems:
        return Outcome(ok=False, message="refused: " + "; ".join(report.problems), details=details)
    skipped = f"; {len(sel.skipped)} skipped" if sel.skipped else ""
    if sel.incomplete is not None:
        details["walk_incomplete"] = sel.incomplete
        skipped += f"; {sel.incomplete}: the oldest of what it saw chosen"
    if dry_run or not params.enforce:
        why = "dry-run" if dry_run else "leashed"
        hint = "" if dry_run else " — set enforce: true to act"
        details.update(skipped=why, **sel.would("delete", _LISTED))
        message = (
            f"{why}: would delete {len(sel.candidates)} files ({megabytes(sel.total_bytes)}){hint}"
            f"{skipped}"
        )
        return _stopped(report, Outcome(ok=True, message=message, details=details))
    done = report.sweep
    details.update(
        files_deleted=len(done.deleted),
        bytes_deleted=report.bytes_deleted,
        bytes_freed=report.bytes_freed,
        deleted=[str(c.path) for c in done.deleted[:_LISTED]],
        kept=listed(done.kept, _LISTED),
        failed=listed(done.failed, _LISTED),
        held_open=report.held_open,
    )
    message = (
        f"deleted {len(done.deleted)} files ({megabytes(report.bytes_deleted)}); freed "
        f"{megabytes(report.bytes_freed)}{skipped}"
    )
    extras = [f"{len(done.kept)} changed since selected, left"] if done.kept else []
    extras += [f"{s.path}: {s.reason}" for s in done.failed[:3]]
    extras += held_open_notes(report.held_open)
    if report.stopped is not None:
        reached = len(done.deleted) + len(done.kept) + len(done.failed)
        details["files_not_reached"] = len(sel.candidates) - reached
        extras.append(
            f"{len(sel.candidates) - reached} chosen not reached: the next run takes them"
        )
    outcome = Outcome(ok=not done.failed, message="; ".join([message, *extras]), details=details)
    return _stopped(report, outcome)


def _stopped(report: Report, outcome: Outcome) -> Outcome:
    """A run stopped by its timeout is not ok, says so first, and is recorded as timed out."""
    if report.stopped is None:
        return outcome
    details = {**outcome.details, "timed_out": True}
    return Outcome(ok=False, message=f"{report.stopped}: {outcome.message}", details=details)


ACTION = ActionSpec(
    name="cleanup",
    params=Params,
    run=run,
    idempotent=True,
    destructive=True,
    summary="delete old throwaway files inside cleanup.roots (never protected, open or linked "
    "ones); leashed unless enforce: true",
    settings=cleanup_settings.SETTINGS,
)
