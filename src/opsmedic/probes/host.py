"""The `host` probe: system-wide CPU, load, memory, swap and pressure stall, with the culprits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
from pydantic import ByteSize, Field, model_validator

from opsmedic.config.types import Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec
from opsmedic.probes import pressure
from opsmedic.probes.process import Key, Reading, read_processes
from opsmedic.probes.process import Params as ProcessFilter

DEFAULT_INTERVAL = 10.0
# On the first check two readings this far apart, so the first CPU figure is a real rate
# over a moment and not the average since boot.
FIRST_SAMPLE_GAP = 0.5
WATCHED = ("cpu", "memory", "io")
_CMDLINE_SHOWN = 256  # characters of a culprit's command line kept in the details


def _psi(what: str) -> Any:
    return Field(None, ge=0, le=100, description=f"percent of time {what}")


class Culprits(Strict):
    """Which processes may be named as the top by CPU and by RSS (the process probe's filters)."""

    users: list[str] = Field(default_factory=list, description="only these users; empty: all")
    names: list[str] = Field(default_factory=list, description="only these process names")
    exclude_names: list[str] = Field(default_factory=list)
    min_uid: int | None = Field(default=None, ge=0, description="only users with at least this uid")


class Params(Strict):
    max_cpu_percent: float | None = Field(
        90.0, gt=0, le=100, description="busy share of all cores over the interval"
    )
    max_load_per_core: float | None = Field(None, gt=0, description="1-minute load / cores")
    min_available_bytes: ByteSize | None = Field(None, description="memory available, e.g. 1GiB")
    min_available_percent: float | None = Field(10.0, gt=0, lt=100)
    max_swap_percent: float | None = Field(None, ge=0, lt=100)
    max_psi_cpu_some_avg10: float | None = _psi("some task waited for a CPU, last 10 s")
    max_psi_cpu_some_avg60: float | None = _psi("some task waited for a CPU, last 60 s")
    max_psi_memory_some_avg10: float | None = _psi("some task stalled on memory, last 10 s")
    max_psi_memory_some_avg60: float | None = _psi("some task stalled on memory, last 60 s")
    max_psi_memory_full_avg10: float | None = _psi("all tasks stalled on memory, last 10 s")
    max_psi_memory_full_avg60: float | None = _psi("all tasks stalled on memory, last 60 s")
    max_psi_io_some_avg10: float | None = _psi("some task stalled on I/O, last 10 s")
    max_psi_io_some_avg60: float | None = _psi("some task stalled on I/O, last 60 s")
    max_psi_io_full_avg10: float | None = _psi("all tasks stalled on I/O, last 10 s")
    max_psi_io_full_avg60: float | None = _psi("all tasks stalled on I/O, last 60 s")
    fall: int = Field(1, ge=1, le=100, description="readings over in a row before firing")
    rise: int = Field(2, ge=1, le=100, description="readings under in a row before resolving")
    top_processes: int = Field(5, ge=0, le=50, description="culprits listed by CPU and by RSS")
    culprits: Culprits = Culprits()

    @model_validator(mode="after")
    def _a_threshold(self) -> Params:
        if not any(getattr(self, limit.name) is not None for limit in LIMITS):
            raise ValueError(f"give at least one threshold: {', '.join(li.name for li in LIMITS)}")
        return self


@dataclass(frozen=True, slots=True)
class Figures:
    """One reading of the whole host."""

    cpu: dict[str, Any]
    memory: dict[str, Any]
    psi: pressure.HostPressure


@dataclass(frozen=True, slots=True)
class Limit:
    """One threshold: the Params field, the resource it watches, and the figure it bounds."""

    name: str
    resource: str
    figure: Callable[[Figures], float | None]
    unit: str = "%"

    @property
    def below(self) -> bool:
        """A `min_` limit fires when the figure falls below it; a `max_` one above."""
        return self.name.startswith("min_")


def _psi_figure(resource: str, line: str, avg: str) -> Callable[[Figures], float | None]:
    return lambda f: f.psi.figure(resource, line, avg)


def _psi_limits() -> list[Limit]:
    # The system-wide cpu `full` line is always zero (or absent): no threshold for it.
    watched = (("cpu", ("some",)), ("memory", pressure.LINES), ("io", pressure.LINES))
    return [
        Limit(f"max_psi_{resource}_{line}_{avg}", resource, _psi_figure(resource, line, avg))
        for resource, lines in watched
        for line in lines
        for avg in ("avg10", "avg60")
    ]


LIMITS: tuple[Limit, ...] = (
    Limit("max_cpu_percent", "cpu", lambda f: f.cpu["percent"]),
    Limit("max_load_per_core", "cpu", lambda f: f.cpu["load_per_core"], unit=""),
    Limit("min_available_bytes", "memory", lambda f: f.memory["available_bytes"], unit=" bytes"),
    Limit("min_available_percent", "memory", lambda f: f.memory["available_percent"]),
    Limit("max_swap_percent", "memory", lambda f: f.memory["swap_percent"]),
    *_psi_limits(),
)


@dataclass(slots=True)
class Debounce:
    """One resource's state between checks: `fall` readings over in a row make it firing,
    `rise` readings under in a row make it resolved again (as the dns probe's fall/rise)."""

    firing: bool = False
    streak: int = 0  # readings in a row that disagree with the state

    def record(self, over: bool, fall: int, rise: int) -> None:
        if over == self.firing:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= (fall if over else rise):
            self.firing, self.streak = over, 0


@dataclass(slots=True)
class Memory:
    """What the probe keeps between checks, in its ProbeContext.state."""

    cpu_times: Any = None  # psutil's system-wide cpu_times at the last check
    at: float = 0.0  # monotonic time of the last process pass
    process_cpu: dict[Key, float] = field(default_factory=dict)
    debounce: dict[str, Debounce] = field(default_factory=dict)
    psi_reported: bool = False


def cpu_figures(before: Any, after: Any, cores: int) -> dict[str, Any]:
    """System-wide utilisation between two psutil cpu_times readings, and the load averages.

    Busy is everything but idle and iowait (iowait is idle time with I/O outstanding);
    guest time is already counted in user and nice on Linux, so it is left out of the total.
    """

    def total(t: Any) -> float:
        return float(sum(t)) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)

    span = total(after) - total(before)

    def share(name: str) -> float | None:
        # No tick between the two readings: nothing measured, rather than a made-up 0 or 100.
        if span <= 0:
            return None
        spent = getattr(after, name, 0.0) - getattr(before, name, 0.0)
        return round(100.0 * spent / span, 2)

    idle, iowait = share("idle"), share("iowait")
    load1, load5, load15 = os.getloadavg()
    return {
        "percent": None
        if idle is None or iowait is None
        else round(max(0.0, 100 - idle - iowait), 2),
        "iowait_percent": iowait,
        "steal_percent": share("steal"),
        "cores": cores,
        "load1": load1,
        "load5": load5,
        "load15": load15,
        "load_per_core": round(load1 / cores, 3),
    }


def memory_figures() -> dict[str, Any]:
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    return {
        "total_bytes": vm.total,
        "available_bytes": vm.available,
        "available_percent": round(100.0 * vm.available / vm.total, 2),
        "used_percent": round(vm.percent, 2),
        "swap_total_bytes": swap.total,
        "swap_used_bytes": swap.used,
        "swap_percent": round(swap.percent, 2),  # psutil: 0 where there is no swap
    }


def read_host(memory: Memory) -> Figures:
    """One reading, CPU measured since the last one (kept in `memory`)."""
    after = psutil.cpu_times()
    cpu = cpu_figures(memory.cpu_times, after, psutil.cpu_count() or 1)
    memory.cpu_times = after
    return Figures(cpu, memory_figures(), pressure.read())


def remember(memory: Memory, t: float, readings: list[Reading]) -> None:
    """Keep each process's CPU time, for the next pass to measure from."""
    memory.process_cpu = {r.key: r.cpu_s for r in readings}
    memory.at = t


def culprits(
    params: Params, memory: Memory, t: float, wall: float, readings: list[Reading]
) -> dict[str, Any]:
    """The top processes by CPU % (of one core, since the last pass) and by RSS."""
    rows = []
    for r in readings:
        before = memory.process_cpu.get(r.key)
        if before is None:  # started since the last pass: all its CPU time is since its start
            spent, span = r.cpu_s, wall - r.key[1]
        else:
            spent, span = r.cpu_s - before, t - memory.at
        cpu = round(max(0.0, 100.0 * spent / span), 2) if span > 0 else None
        rows.append((cpu, r))
    remember(memory, t, readings)
    n = params.top_processes
    by_cpu = sorted(rows, key=lambda row: row[0] or 0.0, reverse=True)[:n]
    by_rss = sorted(rows, key=lambda row: row[1].rss_bytes, reverse=True)[:n]
    return {"top_cpu": [_culprit(c, r) for c, r in by_cpu],
            "top_rss": [_culprit(c, r) for c, r in by_rss]}  # fmt: skip


def _culprit(cpu: float | None, r: Reading) -> dict[str, Any]:
    try:
        cmdline = " ".join(r.process.cmdline())[:_CMDLINE_SHOWN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        cmdline = ""
    pid, started = r.key
    # start_time as repr: it reads back exactly, the value kill_process compares.
    return {"pid": pid, "start_time": repr(started), "name": r.name, "uid": r.uid,
            "cpu_percent": cpu, "rss_bytes": r.rss_bytes, "cmdline": cmdline}  # fmt: skip


def _process_filter(params: Params) -> ProcessFilter:
    # Thresholds off: only the process probe's filters are used, to pick the culprits.
    return ProcessFilter(
        max_cpu_percent=None, max_rss_bytes=ByteSize(0), **params.culprits.model_dump()
    )


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """One observation per watched resource (cpu, memory, io: those with a threshold set)."""
    memory: Memory = ctx.state.setdefault("host", Memory())
    wanted = _process_filter(params) if params.top_processes else None
    if memory.cpu_times is None:
        memory.cpu_times = psutil.cpu_times()
        if wanted is not None:
            remember(memory, *await asyncio.to_thread(read_processes, wanted, ctx.clock))
        await asyncio.sleep(FIRST_SAMPLE_GAP)
    figures = await asyncio.to_thread(read_host, memory)
    top: dict[str, Any] = {"top_cpu": [], "top_rss": []}
    if wanted is not None:
        t, readings = await asyncio.to_thread(read_processes, wanted, ctx.clock)
        top = await asyncio.to_thread(culprits, params, memory, t, ctx.clock.now(), readings)
    details: dict[str, Any] = {"cpu": figures.cpu, "memory": figures.memory,
                               "psi": figures.psi.as_details(), **top}  # fmt: skip
    if figures.psi.unavailable:
        details["psi_unavailable"] = figures.psi.unavailable
        if not memory.psi_reported:
            # Once per probe: the kernel will not grow PSI between checks.
            ctx.log.warning("psi_unavailable", unavailable=figures.psi.unavailable)
            memory.psi_reported = True
    observations = []
    for resource in WATCHED:
        limits = [li for li in LIMITS if li.resource == resource]
        limits = [li for li in limits if getattr(params, li.name) is not None]
        if limits:
            state = memory.debounce.setdefault(resource, Debounce())
            observations.append(_observe(params, resource, limits, figures, state, details))
    return observations


def _observe(
    params: Params,
    resource: str,
    limits: list[Limit],
    figures: Figures,
    state: Debounce,
    details: dict[str, Any],
) -> Observation:
    over: list[dict[str, Any]] = []
    unknown: list[str] = []
    for limit in limits:
        bound = getattr(params, limit.name)
        bound = int(bound) if limit.unit == " bytes" else float(bound)
        value = limit.figure(figures)
        if value is None:
            unknown.append(limit.name)
        elif value < bound if limit.below else value > bound:
            over.append({"threshold": limit.name, "limit": bound, "value": value})
    state.record(bool(over), params.fall, params.rise)
    reasons = [_reason(o, limit) for o in over for limit in limits if limit.name == o["threshold"]]
    text = "; ".join(reasons) if reasons else _summary(resource, figures)
    if state.firing and not over:
        text = f"back under ({state.streak}/{params.rise} toward resolved): {text}"
    elif over and not state.firing:
        text = f"over ({state.streak}/{params.fall} toward firing): {text}"
    if unknown:
        text += f" (not reported here: {', '.join(unknown)})"
    value = {"cpu": figures.cpu["percent"], "memory": figures.memory["used_percent"],
             "io": figures.psi.figure("io", "some", "avg10")}[resource]  # fmt: skip
    return Observation(
        ok=not state.firing,
        value=value,
        message=text,
        resource=resource,
        labels={"over": ",".join(o["threshold"] for o in over)},
        details={**details, "over": over, "not_reported": unknown,
                 "streak": state.streak, "fall": params.fall, "rise": params.rise},
    )  # fmt: skip


def _reason(over: dict[str, Any], limit: Limit) -> str:
    sign = "<" if limit.below else ">"
    value, bound = over["value"], over["limit"]
    if limit.unit == " bytes":
        shown = f"{_size(value)} {sign} {_size(bound)}"
    else:
        shown = f"{value:g}{limit.unit} {sign} {bound:g}{limit.unit}"
    return f"{limit.name.removeprefix('max_').removeprefix('min_')} {shown}"


def _summary(resource: str, f: Figures) -> str:
    if resource == "cpu":
        c = f.cpu
        busy = "not measured" if c["percent"] is None else f"{c['percent']:g}%"
        return f"CPU {busy} of {c['cores']} cores, load {c['load_per_core']:g} per core"
    if resource == "memory":
        m = f.memory
        return (f"{_size(m['available_bytes'])} available ({m['available_percent']:g}%),"
                f" swap {m['swap_percent']:g}% used")  # fmt: skip
    some = f.psi.figure("io", "some", "avg10")
    return "I/O pressure not reported" if some is None else f"I/O stalled {some:g}% (some, 10 s)"


def _size(n: float) -> str:
    return ByteSize(int(n)).human_readable(separator=" ")


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="host",
    params=Params,
    check=check,
    summary="system-wide CPU, load, memory, swap and pressure stall, naming the top processes",
    default_interval=DEFAULT_INTERVAL,
)
