"""Run one command and measure it: wall time, CPU time, peak RSS of its process tree, timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

POLL_S = 0.05
KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL at the timeout


@dataclass(slots=True)
class ProcResult:
    """What one measured process did; `timed_out` means it was killed at the deadline."""

    cmd: list[str]
    returncode: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    peak_rss_self_mib: float
    timed_out: bool
    started_at: float
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _status_kib(pid: int, fields: tuple[str, ...]) -> dict[str, int]:
    """Fields of /proc/PID/status in KiB (e.g. VmHWM, VmRSS); empty once the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                name, _, rest = line.partition(b":")
                key = name.decode()
                if key in fields:
                    found[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return found


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(sum of the current VmRSS of a process and all its descendants, the process's own
    VmHWM), bytes, read from /proc; vanished processes count as 0."""
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        members = [proc]
    total = top_hwm = 0
    for p in members:
        kib = _status_kib(p.pid, ("VmRSS", "VmHWM"))
        total += kib.get("VmRSS", 0) * 1024
        if p is proc:
            top_hwm = kib.get("VmHWM", 0) * 1024
    return total, top_hwm


def run_measured(
    cmd: list[str],
    *,
    stdout_path: Path,
    stderr_path: Path,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcResult:
    """Run `cmd` to completion (or kill its process group at `timeout_s`) and measure it.

    Peak RSS of the process tree (`peak_rss_mib`) is sampled every 50 ms from /proc: the
    highest sum of the members' current VmRSS, never below the top process's own kernel
    high-water mark (`VmHWM`, `peak_rss_self_mib`, exact between samples). `ru_maxrss` from
    wait4 is not used: on Linux a child's inherits the peak of the process that forked it
    (here the benchmark, holding every event), so it would report our size, not the child's.
    CPU time is the top process's user+system time from wait4, which includes its waited-for
    children.
    """
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        started_at = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        try:
            ps = psutil.Process(proc.pid)
        except psutil.Error:
            ps = None
        peak = 0  # highest sampled sum of the tree's VmRSS
        self_hwm = 0  # the top process's VmHWM, as of its last sample
        timed_out = False
        kill_at: float | None = None
        status = 0
        rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if ps is not None:
                tree, top = _tree_rss(ps)
                peak, self_hwm = max(peak, tree), max(self_hwm, top)
            now = time.perf_counter()
            if not timed_out and now - t0 > timeout_s:
                timed_out, kill_at = True, now + KILL_GRACE_S
                _signal_group(proc.pid, signal.SIGTERM)
            elif kill_at is not None and now > kill_at:
                _signal_group(proc.pid, signal.SIGKILL)
                kill_at = None
            time.sleep(POLL_S)
        wall = time.perf_counter() - t0
        # wait4 reaped the child; tell Popen so it does not try (and warn) later.
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = rusage.ru_utime + rusage.ru_stime if rusage else 0.0
    self_peak = self_hwm / 2**20
    return ProcResult(
        cmd=cmd,
        returncode=None if timed_out else proc.returncode,
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_mib=max(peak / 2**20, self_peak),
        peak_rss_self_mib=self_peak,
        timed_out=timed_out,
        started_at=started_at,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the measured command and everything it started (it runs in its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def log(message: str) -> None:
    """Progress goes to stderr; stdout is kept for the final JSON line."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99), inclusive method; 0.0 for no values."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def rounded(x: float | None, nd: int = 1) -> float | None:
    """`x` rounded for the JSON line; None stays None."""
    return None if x is None else round(x, nd)


def reap(procs: list[subprocess.Popen[str]], timeout_s: float) -> None:
    """Wait for each process in turn, killing the one still running after `timeout_s`."""
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
