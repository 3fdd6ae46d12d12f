"""The `process` probe: processes over a CPU % (over a sliding window) or RSS threshold."""

from __future__ import annotations

import asyncio
import pwd
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psutil
from pydantic import ByteSize, Field, model_validator

from opsmedic.clock import Clock
from opsmedic.config.types import PositiveDuration, Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec

# A few readings per window: enough for `for: 60s` to mean a minute, cheap at one pass each.
DEFAULT_INTERVAL = 10.0
# On the first check two passes this far apart, so its first reading is a real rate and not a
# lifetime average (a daemon idle for a week that just started spinning reads low).
FIRST_SAMPLE_GAP = 0.5
# Samples kept per process: with a short interval the window's start may fall off the
# front, and the reading then covers a little less than the window (details.window_s says).
MAX_SAMPLES = 64
_ATTRS = ["name", "status", "uids", "create_time", "cpu_times", "memory_info"]

# A process's identity: (pid, start time). A pid reused by a new process is a new key.
Key = tuple[int, float]
Samples = deque[tuple[float, float]]  # (monotonic time, CPU seconds used so far)


class Params(Strict):
    max_cpu_percent: float | None = Field(
        90.0,
        gt=0,
        description="percent of one core, as top shows it: several busy threads pass 100",
    )
    max_rss_bytes: ByteSize | None = Field(None, description="resident memory, e.g. 2GiB")
    window: PositiveDuration = Field(30.0, description="CPU % is measured over this long")
    users: list[str] = Field(default_factory=list, description="only these users; empty: all")
    names: list[str] = Field(default_factory=list, description="only these process names")
    exclude_names: list[str] = Field(default_factory=list)
    min_uid: int | None = Field(None, ge=0, description="only users with at least this uid")
    max_observations: int = Field(
        20, ge=1, le=1000, description="firing events per check (the busiest first)"
    )

    @model_validator(mode="after")
    def _a_threshold(self) -> Params:
        if self.max_cpu_percent is None and self.max_rss_bytes is None:
            raise ValueError("give max_cpu_percent, max_rss_bytes or both")
        return self


@dataclass(slots=True)
class Reading:
    """One process in one pass over the process table."""

    key: Key
    name: str
    uid: int
    cpu_s: float
    rss_bytes: int
    process: psutil.Process


@dataclass(slots=True)
class Hog:
    reading: Reading
    cpu_percent: float | None
    span_s: float
    over: list[str]


@dataclass(slots=True)
class Memory:
    """What the probe keeps between checks, in its ProbeContext.state."""

    started: bool = False
    samples: dict[Key, Samples] = field(default_factory=dict)
    # Processes reported firing and not yet resolved: their resource and identity labels.
    firing: dict[Key, tuple[str, dict[str, str]]] = field(default_factory=dict)


def cpu_rate(samples: Samples, t: float, cpu_s: float, window: float) -> tuple[float | None, float]:
    """Add a sample; CPU % of one core since the latest sample at least `window` old (else the
    oldest kept), and the span that covers. None when no time has passed."""
    samples.append((t, cpu_s))
    while len(samples) > 1 and samples[1][0] <= t - window:
        samples.popleft()
    t0, cpu0 = samples[0]
    span = t - t0
    if span <= 0:
        return None, 0.0
    return max(0.0, 100.0 * (cpu_s - cpu0) / span), span


def read_processes(params: Params, clock: Clock) -> tuple[float, list[Reading]]:
    """One pass over the process table: the wanted processes and the pass's monotonic time."""
    allowed = _uids(params.users) if params.users else None
    readings = []
    # as_dict rather than process_iter(attrs): its `info` lives on Process objects psutil
    # shares between callers, and two probes may pass over the table at once.
    for proc in psutil.process_iter():
        try:
            info = proc.as_dict(_ATTRS)
        except psutil.NoSuchProcess:
            continue
        cpu, mem, uids = info["cpu_times"], info["memory_info"], info["uids"]
        started = info["create_time"]
        if cpu is None or mem is None or uids is None or started is None:
            continue  # not ours to read: nothing to measure
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue  # it has exited; only its exit status waits for its parent
        name = info["name"] or ""
        if (params.names and name not in params.names) or name in params.exclude_names:
            continue
        if params.min_uid is not None and uids.real < params.min_uid:
            continue
        if allowed is not None and uids.real not in allowed:
            continue
        key = (proc.pid, started)
        readings.append(Reading(key, name, uids.real, cpu.user + cpu.system, mem.rss, proc))
    return clock.monotonic(), readings


def _uids(users: list[str]) -> set[int]:
    # A user that does not exist (yet) on this host has no processes to report.
    found = set()
    for user in users:
        try:
            found.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            continue
    return found


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """Firing observations for processes over a threshold; resolved ones when they are not."""
    memory: Memory = ctx.state.setdefault("memory", Memory())
    if not memory.started:
        t, readings = await asyncio.to_thread(read_processes, params, ctx.clock)
        for r in readings:
            memory.samples[r.key] = deque([(t, r.cpu_s)], maxlen=MAX_SAMPLES)
        memory.started = True
        await asyncio.sleep(FIRST_SAMPLE_GAP)
    t, readings = await asyncio.to_thread(read_processes, params, ctx.clock)
    wall = ctx.clock.now()
    hogs: list[Hog] = []
    now: dict[Key, tuple[float | None, Reading]] = {}
    for r in readings:
        samples = memory.samples.get(r.key)
        if samples is None:
            # Started since the last pass: all its CPU time was spent since its start.
            age = max(0.0, wall - r.key[1])
            samples = memory.samples[r.key] = deque([(t - age, 0.0)], maxlen=MAX_SAMPLES)
        cpu, span = cpu_rate(samples, t, r.cpu_s, params.window)
        now[r.key] = (cpu, r)
        over = _over(params, cpu, r.rss_bytes)
        if over:
            hogs.append(Hog(r, cpu, span, over))
    for key in memory.samples.keys() - now.keys():
        del memory.samples[key]

    hogs.sort(key=lambda h: (h.cpu_percent or 0.0, h.reading.rss_bytes), reverse=True)
    shown = hogs[: params.max_observations]
    cmdlines = await asyncio.to_thread(lambda: [_cmdline(h.reading.process) for h in shown])
    cores = psutil.cpu_count() or 1
    observations = []
    for hog, cmdline in zip(shown, cmdlines, strict=True):
        obs = _firing(params, hog, cmdline, cores, wall)
        memory.firing[hog.reading.key] = (obs.resource, _identity(obs.labels))
        observations.append(obs)
    still_over = {h.reading.key for h in hogs}
    recovered = [key for key in memory.firing if key not in still_over]
    for key in recovered[: params.max_observations]:
        resource, labels = memory.firing.pop(key)
        observations.append(_resolved(resource, labels, now.get(key)))
    return observations


def _over(params: Params, cpu: float | None, rss: int) -> list[str]:
    over = []
    if params.max_cpu_percent is not None and cpu is not None and cpu > params.max_cpu_percent:
        over.append("cpu")
    if params.max_rss_bytes is not None and rss > params.max_rss_bytes:
        over.append("rss")
    return over


def _identity(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "over"}


def _size(n: int) -> str:
    return ByteSize(n).human_readable(separator=" ")


def _firing(params: Params, hog: Hog, cmdline: list[str], cores: int, wall: float) -> Observation:
    r = hog.reading
    pid, started = r.key
    user = _user_name(r.uid)
    cpu = hog.cpu_percent
    reasons = []
    if cpu is not None:
        limit = f" > {params.max_cpu_percent:g}%" if "cpu" in hog.over else ""
        reasons.append(
            f"{cpu:.1f}% CPU over {hog.span_s:.0f}s ({cpu / cores:.1f}% of {cores} cores){limit}"
        )
    limit = f" > {_size(params.max_rss_bytes)}" if params.max_rss_bytes is not None else ""
    reasons.append(f"RSS {_size(r.rss_bytes)}{limit if 'rss' in hog.over else ''}")
    details: dict[str, Any] = {
        "pid": pid,
        "start_time": started,
        "name": r.name,
        "user": user,
        "uid": r.uid,
        "cmdline": cmdline,
        "cpu_percent": None if cpu is None else round(cpu, 2),
        "cpu_percent_total": None if cpu is None else round(cpu / cores, 2),
        "cores": cores,
        "rss_bytes": r.rss_bytes,
        "runtime_s": round(max(0.0, wall - started), 1),
        "window_s": round(hog.span_s, 1),
    }
    return Observation(
        ok=False,
        value=details["cpu_percent"],
        message=f"{r.name}[{pid}] ({user}): " + "; ".join(reasons),
        resource=f"{r.name}[{pid}]",
        labels={
            "pid": str(pid),
            # repr round-trips the float: the exact value kill_process compares.
            "start_time": repr(started),
            "user": user,
            "uid": str(r.uid),
            "name": r.name,
            "over": ",".join(hog.over),
        },
        details=details,
    )


def _resolved(
    resource: str, labels: dict[str, str], now: tuple[float | None, Reading] | None
) -> Observation:
    if now is None:
        return Observation(
            ok=True, value=None, message=f"{resource} exited", resource=resource,
            labels=labels, details={"exited": True},
        )  # fmt: skip
    cpu, r = now
    shown = "" if cpu is None else f"{cpu:.1f}% CPU, "
    return Observation(
        ok=True,
        value=None if cpu is None else round(cpu, 2),
        message=f"{resource} back under its thresholds: {shown}RSS {_size(r.rss_bytes)}",
        resource=resource,
        labels=labels,
        details={
            "exited": False,
            "cpu_percent": None if cpu is None else round(cpu, 2),
            "rss_bytes": r.rss_bytes,
        },
    )


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="process",
    params=Params,
    check=check,
    summary="processes over a CPU % (sliding window) or RSS threshold, one event each",
    default_interval=DEFAULT_INTERVAL,
)
