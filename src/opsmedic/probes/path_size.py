"""The `path_size` probe: bytes and files of a directory tree or a file, against a threshold."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import ByteSize, Field, field_validator, model_validator

from opsmedic.archive.tree import NotWalkable, TreeSize, default_workers, measure
from opsmedic.config.types import PositiveDuration, Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec
from opsmedic.probes.disk import failed

# Walking a big tree costs disk reads: once a minute is often enough to see a directory grow.
DEFAULT_INTERVAL = 60.0
# Share of the check's timeout the walks get, so an incomplete walk is reported as such
# rather than lost with the whole check to the runner's timeout.
_WALK_SHARE = 0.8


class Params(Strict):
    paths: list[str] = Field(min_length=1, description="directories or files, each measured")
    max_bytes: ByteSize | None = Field(None, description="fire above this size, e.g. 20GiB")
    max_files: int | None = Field(None, ge=0, description="fire above this many files")
    max_entries: int = Field(
        2_000_000, ge=1, description="entries visited per path before the walk gives up"
    )
    max_seconds: PositiveDuration | None = Field(
        None, description="time per check for all paths (default: 80% of the probe's timeout)"
    )
    top: int = Field(5, ge=0, le=50, description="largest files and subdirectories listed")
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=64,
        description="processes walking a tree at once (default: 2, or 1 on a single CPU)",
    )

    @field_validator("paths")
    @classmethod
    def _distinct(cls, paths: list[str]) -> list[str]:
        for i, path in enumerate(paths):
            if not path or "\0" in path:
                raise ValueError(f"paths[{i}] is empty or holds a NUL byte")
            if path in paths[:i]:
                raise ValueError(f"paths[{i}] {path!r} is listed twice")
        return paths

    @model_validator(mode="after")
    def _a_threshold(self) -> Params:
        if self.max_bytes is None and self.max_files is None:
            raise ValueError("set max_bytes, max_files or both: the threshold the size is held to")
        return self


def _human(n: int) -> str:
    return ByteSize(n).human_readable(separator=" ")


def observe(params: Params, size: TreeSize) -> Observation:
    """One walk's observation: firing over a threshold or when the walk could not finish."""
    over: list[str] = []
    if params.max_bytes is not None and size.bytes > params.max_bytes:
        over.append(f"{_human(size.bytes)} > {_human(params.max_bytes)}")
    if params.max_files is not None and size.files > params.max_files:
        over.append(f"{size.files} files > {params.max_files}")
    details: dict[str, Any] = {
        "path": size.path,
        "complete": size.complete,
        "elapsed_s": size.elapsed_s,
        "dirs": size.dirs,
        "errors": size.errors,
        "errors_named": size.errors_named,
        "other_filesystems": size.other_filesystems,
        "other_filesystems_named": size.other_filesystems_named,
        "largest_files": [{"path": e.path, "bytes": e.bytes} for e in size.largest_files],
        "largest_dirs": [{"path": e.path, "bytes": e.bytes} for e in size.largest_dirs],
    }
    labels = {"complete": str(size.complete).lower(), "errors": str(size.errors)}
    unreadable = f"; {size.errors} entries unreadable" if size.errors else ""
    if not size.complete:
        # Never a partial figure as if it were the size: the counts are lower bounds.
        details.update(bytes_at_least=size.bytes, files_at_least=size.files, stopped=size.stopped)
        known = f"; already over: {', '.join(over)}" if over else ""
        return Observation(
            ok=False,
            value=None,
            message=f"incomplete: {size.files} files in {size.elapsed_s:g}s, stopped by "
            f"{size.stopped}{known}{unreadable}",
            resource=size.path,
            labels={**labels, "stopped": size.stopped or ""},
            details=details,
        )
    details.update(bytes=size.bytes, files=size.files)
    summary = f"{_human(size.bytes)} in {size.files} files under {size.path}"
    return Observation(
        ok=not over,
        value=size.bytes,
        message=("; ".join(over) if over else summary) + unreadable,
        resource=size.path,
        labels={**labels, "bytes": str(size.bytes), "files": str(size.files)},
        details=details,
    )


def walk_all(params: Params, base: str, budget: float) -> list[Observation]:
    """Each path in turn, sharing `budget` seconds; blocking (run in a thread)."""
    deadline = time.monotonic() + budget
    observations = []
    for path in params.paths:
        full = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
        try:
            size = measure(
                full,
                max_entries=params.max_entries,
                max_seconds=max(0.0, deadline - time.monotonic()),
                top=params.top,
                workers=params.workers,
            )
        except NotWalkable as exc:
            observations.append(failed(path, exc))
            continue
        size.path = path  # the resource is the path as configured
        observations.append(observe(params, size))
    return observations


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """One observation per configured path, in the configured order."""
    budget = params.max_seconds or ctx.timeout * _WALK_SHARE
    return await asyncio.to_thread(walk_all, params, str(ctx.base_dir.resolve()), budget)


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="path_size",
    params=Params,
    check=check,
    summary="bytes and files of a directory tree or a file (no symlink followed, one "
    "filesystem, bounded), with its largest entries",
    default_interval=DEFAULT_INTERVAL,
)
