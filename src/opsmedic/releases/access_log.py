"""Real traffic as nginx logged it: the `opsmedic` log_format, followed live, tallied per backend.

Each upstream attempt counts for the backend that made it: a request nginx retried
(`$upstream_addr` "a, b", `$upstream_status` "502, 200") is an error of `a` and a success of
`b`, so a judge sees a failing backend even when `proxy_next_upstream` hid it from clients.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Tab-separated, so no field can run into the next (nginx escapes a tab inside a value).
LOG_FORMAT = (
    "log_format opsmedic "
    "'$msec\\t$status\\t$upstream_addr\\t$upstream_status\\t$upstream_response_time';"
)
FIELDS = 5
MAX_LINE = 64 * 1024  # a longer "line" is no line of this format: counted malformed
CHUNK = 1024 * 1024


class MalformedLine(ValueError):
    """A line that is not in the opsmedic log_format; the message says which field."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one backend: its status (None: no answer) and seconds (None: not measured)."""

    backend: str
    status: int | None
    seconds: float | None


@dataclass(frozen=True, slots=True)
class Request:
    """One logged request: when it ended, the status the client got, every upstream attempt."""

    at: float
    status: int
    attempts: tuple[Attempt, ...]


def server_error(status: int | None) -> bool:
    """The default error: a 5xx, or no answer at all (connection refused, reset, timed out)."""
    return status is None or status >= 500


def parse_line(line: str) -> Request:
    """One line of the opsmedic log_format as a Request; MalformedLine otherwise."""
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != FIELDS:
        raise MalformedLine(f"{len(parts)} tab-separated fields, {FIELDS} expected")
    msec, status, addrs, statuses, times = parts
    try:
        at = float(msec)
        final = int(status)
    except ValueError:
        raise MalformedLine(f"$msec {msec!r} or $status {status!r} is not a number") from None
    if not math.isfinite(at):
        raise MalformedLine(f"$msec {msec!r} is not a time")
    if addrs == "-":  # nginx answered itself (a return, a static file): no backend involved
        return Request(at, final, ())
    backends, codes, seconds = _split(addrs), _split(statuses), _split(times)
    if not len(backends) == len(codes) == len(seconds):
        raise MalformedLine(
            f"{len(backends)} upstream addresses, {len(codes)} statuses, {len(seconds)} times"
        )
    attempts = tuple(
        Attempt(backend, _status(code), _seconds(took))
        for backend, code, took in zip(backends, codes, seconds, strict=True)
    )
    return Request(at, final, attempts)


def _split(field_text: str) -> list[str]:
    # ", " separates the servers of one upstream group, " : " the groups of an internal redirect.
    return [item.strip() for group in field_text.split(" : ") for item in group.split(",")]


def _status(text: str) -> int | None:
    if text == "-":  # no answer: refused, reset or timed out before a status line
        return None
    if not text.isdigit():
        raise MalformedLine(f"upstream status {text!r} is not a number")
    return int(text)


def _seconds(text: str) -> float | None:
    if text == "-":
        return None
    try:
        value = float(text)
    except ValueError:
        raise MalformedLine(f"upstream response time {text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise MalformedLine(f"upstream response time {text!r} is not a duration")
    return value


@dataclass(slots=True)
class BackendStats:
    """One backend's attempts in a window: counts, and the samples a judge compares."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, answered attempts only
    times: list[float] = field(default_factory=list)  # when each attempt ended ($msec)
    failed: list[bool] = field(default_factory=list)  # parallel to times

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def p95(self) -> float | None:
        """The 95th percentile latency (nearest rank), None without samples."""
        if not self.latencies:
            return None
        ranked = sorted(self.latencies)
        return ranked[max(0, math.ceil(0.95 * len(ranked)) - 1)]

    def error_ratios(self, bucket_s: float) -> list[float]:
        """The error ratio of each `bucket_s`-second slice that has attempts, oldest first.

        A judge compares distributions: one ratio per slice gives it samples where a
        single ratio for the window would give it one number.
        """
        slices: dict[int, list[int]] = {}
        for at, failed in zip(self.times, self.failed, strict=True):
            counts = slices.setdefault(math.floor(at / bucket_s), [0, 0])
            counts[0] += 1
            counts[1] += failed
        return [errors / total for _, (total, errors) in sorted(slices.items())]


def tally(
    requests: Iterable[Request],
    *,
    start: float = -math.inf,
    end: float = math.inf,
    is_error: Callable[[int | None], bool] = server_error,
) -> dict[str, BackendStats]:
    """Per backend address, the attempts of requests that ended in [start, end)."""
    stats: dict[str, BackendStats] = {}
    for request in requests:
        if not start <= request.at < end:
            continue
        for attempt in request.attempts:
            backend = stats.setdefault(attempt.backend, BackendStats())
            failed = is_error(attempt.status)
            backend.requests += 1
            backend.errors += failed
            backend.times.append(request.at)
            backend.failed.append(failed)
            if attempt.status is not None and attempt.seconds is not None:
                backend.latencies.append(attempt.seconds)
    return stats


class LogFollower:
    """New complete lines of a log file as it is written, across rotation and truncation.

    It starts at the file's current end (what was logged before is not this release's
    traffic). A rotated file (new inode at the path) is read to its end for as long as the
    new one is still empty, since nginx writes to the old one until it reopens its logs;
    a file that shrank (copytruncate) is read again from its start (a truncation the writer
    has already outgrown by the next read cannot be seen: copytruncate loses lines anyway).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.malformed = 0  # over-long lines dropped here; parse errors are counted by Traffic
        self._fd: int | None = None
        self._old: int | None = None  # the rotated file, drained until the new one is used
        self._pending = b""
        self._open(at_end=True)

    def close(self) -> None:
        for fd in (self._fd, self._old):
            if fd is not None:
                os.close(fd)
        self._fd = self._old = None

    def read(self) -> list[str]:
        """Every line completed since the last call (without its newline)."""
        data = b"" if self._old is None else self._drain(self._old)
        if self._fd is None:
            self._open(at_end=False)  # created since: everything in it is new
        if self._fd is not None:
            if os.fstat(self._fd).st_size < os.lseek(self._fd, 0, os.SEEK_CUR):
                # Truncated in place (copytruncate): what is in it now was written since.
                os.lseek(self._fd, 0, os.SEEK_SET)
                self._pending = b""
            data += self._drain(self._fd)
            data += self._check_rotation()
        return self._lines(data)

    def _open(self, *, at_end: bool) -> None:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        if at_end:
            os.lseek(self._fd, 0, os.SEEK_END)

    def _drain(self, fd: int) -> bytes:
        chunks = []
        while chunk := os.read(fd, CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_rotation(self) -> bytes:
        """Switch to a new file at the path; the old file's last bytes once it is done."""
        assert self._fd is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return b""  # moved away, not yet recreated: keep reading the old file
        mine = os.fstat(self._fd)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            if self._old is not None:
                os.close(self._old)
            self._old, self._fd = self._fd, None
            self._open(at_end=False)
        if self._old is None or self._fd is None or os.fstat(self._fd).st_size == 0:
            return b""
        # nginx writes to the new file now; what is left in the old one comes before it.
        rest = self._drain(self._old)
        os.close(self._old)
        self._old = None
        return rest

    def _lines(self, data: bytes) -> list[str]:
        *complete, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > MAX_LINE:
            self.malformed += 1
            self._pending = b""
        kept = [line for line in complete if len(line) <= MAX_LINE]
        self.malformed += len(complete) - len(kept)
        return [line.decode("utf-8", errors="replace") for line in kept]


class Traffic:
    """The requests of one access log since it was opened, kept for `keep_s` seconds."""

    def __init__(self, path: Path, *, keep_s: float = 900.0) -> None:
        self.follower = LogFollower(path)
        self.keep_s = keep_s
        self.requests: deque[Request] = deque()
        self.parse_errors = 0
        self.last_error: str | None = None  # the latest malformed line's reason, for the user

    @property
    def malformed(self) -> int:
        return self.parse_errors + self.follower.malformed

    def unreadable(self) -> str:
        """Why the log cannot be read ('' when it can): no traffic read from it is no data."""
        path = self.follower.path
        if not path.exists():
            return f"access log {path} does not exist"
        if not os.access(path, os.R_OK):
            return f"access log {path} cannot be read"
        return ""

    def poll(self) -> int:
        """Read what nginx wrote since the last poll; how many requests were added."""
        added = 0
        for line in self.follower.read():
            try:
                self.requests.append(parse_line(line))
            except MalformedLine as exc:
                self.parse_errors += 1
                self.last_error = str(exc)
            else:
                added += 1
        if self.requests:
            horizon = self.requests[-1].at - self.keep_s
            while self.requests and self.requests[0].at < horizon:
                self.requests.popleft()
        return added

    def window(
        self,
        start: float = -math.inf,
        end: float = math.inf,
        is_error: Callable[[int | None], bool] = server_error,
    ) -> dict[str, BackendStats]:
        """Per backend, the attempts of requests that ended in [start, end) ($msec, epoch s)."""
        return tally(self.requests, start=start, end=end, is_error=is_error)
