"""The `disk` probe: used %, free bytes and inodes used % of the filesystem holding each path."""

from __future__ import annotations

import asyncio
import errno
import os
from dataclasses import dataclass
from typing import Any

import psutil
from pydantic import ByteSize, Field, field_validator

from opsmedic.config.types import Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec

# A disk crossing its threshold is seen within 5 s (plus jitter), so a rule without `for:`
# has its archive started within 10 s.
DEFAULT_INTERVAL = 5.0
# Share of the check's timeout a filesystem gets to answer statvfs; the rest is for the
# other paths' observations to be reported rather than lost with the whole check.
_ANSWER_SHARE = 0.8


class Params(Strict):
    paths: list[str] = Field(min_length=1, description="paths whose filesystems are checked")
    max_used_percent: float = Field(85.0, gt=0, le=100, description="used %, as df counts it")
    min_free_bytes: ByteSize | None = Field(
        None, description="bytes available to unprivileged users, e.g. 5GiB"
    )
    max_inodes_used_percent: float = Field(90.0, gt=0, le=100)

    @field_validator("paths")
    @classmethod
    def _distinct(cls, paths: list[str]) -> list[str]:
        # A path is an event's resource: listed twice, two readings would share one identity.
        for i, path in enumerate(paths):
            if not path:
                raise ValueError(f"paths[{i}] is empty")
            if path in paths[:i]:
                raise ValueError(f"paths[{i}] {path!r} is listed twice")
        return paths


@dataclass(frozen=True, slots=True)
class Usage:
    """One filesystem's figures, as `df` and `df -i` show them."""

    used_percent: float
    free_bytes: int
    total_bytes: int
    inodes_used_percent: float | None  # None where the filesystem has no inode count (btrfs)
    mountpoint: str


def measure(path: str) -> Usage:
    """statvfs of `path`'s filesystem; raises OSError for a missing or unreachable path."""
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    # df's Use%: blocks reserved for root count neither as used nor as available.
    usable = used + st.f_bavail
    inodes_used = st.f_files - st.f_ffree
    return Usage(
        used_percent=100.0 * used / usable if usable else 0.0,
        free_bytes=st.f_bavail * st.f_frsize,
        total_bytes=st.f_blocks * st.f_frsize,
        inodes_used_percent=100.0 * inodes_used / st.f_files if st.f_files else None,
        mountpoint=_mountpoint(path),
    )


def _mountpoint(path: str) -> str:
    current = os.path.realpath(path)
    while not os.path.ismount(current):
        current = os.path.dirname(current)
    return current


def devices() -> dict[str, tuple[str, str]]:
    """Mountpoint → (device, fstype), read from the mount table (never touches a filesystem)."""
    # The last mount on a mountpoint is the one visible there.
    return {p.mountpoint: (p.device, p.fstype) for p in psutil.disk_partitions(all=True)}


def observe(params: Params, path: str, usage: Usage, mounts: dict[str, Any]) -> Observation:
    """The observation for one path: firing when any threshold is crossed."""
    over: list[str] = []
    if usage.used_percent > params.max_used_percent:
        over.append(f"{usage.used_percent:.1f}% used > {params.max_used_percent:g}%")
    if params.min_free_bytes is not None and usage.free_bytes < params.min_free_bytes:
        over.append(
            f"{ByteSize(usage.free_bytes).human_readable(separator=' ')} free"
            f" < {params.min_free_bytes.human_readable(separator=' ')}"
        )
    inodes = usage.inodes_used_percent
    if inodes is not None and inodes > params.max_inodes_used_percent:
        over.append(f"{inodes:.1f}% inodes used > {params.max_inodes_used_percent:g}%")
    device, fstype = mounts.get(usage.mountpoint, ("", ""))
    figures: dict[str, Any] = {
        "used_percent": round(usage.used_percent, 2),
        "free_bytes": usage.free_bytes,
        "total_bytes": usage.total_bytes,
        "inodes_used_percent": None if inodes is None else round(inodes, 2),
    }
    where = {"mountpoint": usage.mountpoint, "device": device, "fstype": fstype}
    free = ByteSize(usage.free_bytes).human_readable(separator=" ")
    summary = f"{usage.used_percent:.1f}% used, {free} free on {usage.mountpoint}"
    return Observation(
        ok=not over,
        value=figures["used_percent"],
        message="; ".join(over) if over else summary,
        resource=path,
        labels={**{k: "" if v is None else str(v) for k, v in figures.items()}, **where},
        details={**figures, **where},
    )


def failed(path: str, exc: OSError) -> Observation:
    """A path that cannot be measured: a firing observation that says why, never a crash."""
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    reason = exc.strerror or str(exc)
    return Observation(
        ok=False,
        value=None,
        message=f"cannot check {path}: {reason}",
        resource=path,
        labels={"error": code},
        details={"path": path, "error": reason},
    )


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """One observation per configured path, in the configured order."""
    loop = asyncio.get_running_loop()
    # statvfs on a hung network mount blocks in the kernel for as long as the server is
    # gone. Such a call is never started twice: the next checks wait on the same one, so
    # a dead NFS server costs one stuck thread, not one per check.
    pending: dict[str, asyncio.Future[Usage]] = ctx.state.setdefault("statvfs", {})
    for path in params.paths:
        if path not in pending:
            pending[path] = loop.run_in_executor(None, measure, path)
    mounts = await asyncio.to_thread(devices)
    budget = ctx.timeout * _ANSWER_SHARE
    await asyncio.wait([pending[p] for p in params.paths], timeout=budget)
    observations = []
    for path in params.paths:
        answer = pending[path]
        if not answer.done():
            observations.append(_no_answer(path, budget))
            continue
        del pending[path]
        exc = answer.exception()
        if exc is None:
            observations.append(observe(params, path, answer.result(), mounts))
        elif isinstance(exc, OSError):
            observations.append(failed(path, exc))
        else:
            raise exc
    return observations


def _no_answer(path: str, waited: float) -> Observation:
    return Observation(
        ok=False,
        value=None,
        message=f"cannot check {path}: no answer from its filesystem within {waited:g}s",
        resource=path,
        labels={"error": "no_answer"},
        details={"path": path, "error": "no answer (a hung network mount?)"},
    )


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="disk",
    params=Params,
    check=check,
    summary="used %, free bytes and inodes used % of each path's filesystem",
    default_interval=DEFAULT_INTERVAL,
)
