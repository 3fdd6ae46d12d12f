"""bench/rollback.py's client: keep-alive GETs paced at a fixed rate, and what one trial shows."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

CONNECTIONS = 8  # keep-alive connections, each its own thread
TIMEOUT_S = 5.0  # per request; no answer within it is a failure
QUIET_S = 1.0  # v1-only answers for at least this long before the window ends = restored


@dataclass(frozen=True, slots=True)
class Answer:
    """One request: when it was sent (monotonic), its status (0: no answer), who answered
    (the balancer's X-Backend header: an address for nginx, a server name for HAProxy),
    and whether it was resent on a fresh connection after a keep-alive one was closed."""

    sent: float
    status: int
    backend: str
    resent: bool = False

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


@dataclass(slots=True)
class Client:
    """GET / on `port`, request i sent at start + i / rate (paced from the start, not
    closed-loop: a slow answer delays only its own connection's next request), at most
    `limit` requests, until stop() is called."""

    port: int
    rate: float
    limit: int
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        start = time.monotonic() + 0.05
        for lane in range(CONNECTIONS):
            thread = threading.Thread(target=self._lane, args=(lane, start), daemon=True)
            thread.start()
            self._threads.append(thread)

    def first_sent_by(self, backend: str) -> float | None:
        """The send time of the first request `backend` answered so far, or None."""
        with self._lock:
            return min((a.sent for a in self.answers if a.backend == backend), default=None)

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT_S * 3)
        with self._lock:
            return sorted(self.answers, key=lambda a: a.sent)

    def _lane(self, lane: int, start: float) -> None:
        conn: http.client.HTTPConnection | None = None
        for i in range(lane, self.limit, CONNECTIONS):
            if self._stop.is_set():
                break
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            answer, conn = self._get(conn, sent)
            with self._lock:
                self.answers.append(answer)
        if conn is not None:
            conn.close()

    def _get(
        self, conn: http.client.HTTPConnection | None, sent: float
    ) -> tuple[Answer, http.client.HTTPConnection | None]:
        """One GET; a reused connection the balancer closed as the request went out (an
        nginx reload closes idle keep-alive connections) is resent once on a fresh one, as
        browsers do for a GET."""
        for attempt in (0, 1):
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                backend = response.getheader("X-Backend", "")
                if response.will_close:
                    conn.close()
                    conn = None
                return Answer(sent, response.status, backend, attempt == 1), conn
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                conn = None
                if not reused:
                    break
            except OSError:  # refused, timed out
                conn.close()
                conn = None
                break
        return Answer(sent, 0, "", attempt == 1), conn


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial's figures, from the client's answers alone.

    - `live`: the send time of the first request v2 answered; `first_500`: of its first 500.
    - `restored_s`: from `first_500` to the send time of the first request after the last
      one not answered well by v1 (a v2 answer, a failure), provided v1 alone answered from
      then on for at least QUIET_S up to the window's end; None when that never happened.
    - `first_quiet_s`: from `first_500` to the first request after which v1 alone answered
      for QUIET_S (a balancer that brings v2 back later has first_quiet < restored).
    - `failed` / `requests`: in the window [live, live + window_s); `v2_requests`, `v2_errors`
      likewise: what the canary got and how it did (for the computed Flagger figures), and
      `canary_share` v2's share of the requests while it answered (the weight, as measured).
    """

    requests: int
    failed: int
    v2_requests: int
    v2_errors: int
    restored_s: float | None
    first_quiet_s: float | None
    resent: int
    rate: float
    canary_share: float  # v2's share of the requests sent while it answered (live → its last)

    @property
    def failed_share(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


def analyse(answers: list[Answer], v1: str, v2: str, window_s: float) -> Trial | None:
    """The trial's figures, or None when v2 never answered (it never went live)."""
    first_v2 = next((a for a in answers if a.backend == v2), None)
    first_500 = next((a for a in answers if a.backend == v2 and a.status >= 500), None)
    if first_v2 is None or first_500 is None:
        return None
    live, end = first_v2.sent, first_v2.sent + window_s
    window = [a for a in answers if live <= a.sent < end]
    after = [a for a in answers if a.sent >= first_500.sent and a.sent < end]
    last_v2 = max(a.sent for a in window if a.backend == v2)
    serving = [a for a in window if a.sent <= last_v2]
    return Trial(
        requests=len(window),
        failed=sum(a.failed for a in window),
        v2_requests=sum(a.backend == v2 for a in window),
        v2_errors=sum(a.backend == v2 and a.failed for a in window),
        restored_s=_restored(after, v1, end),
        first_quiet_s=_first_quiet(after, v1),
        resent=sum(a.resent for a in window),
        rate=len(window) / window_s,
        canary_share=sum(a.backend == v2 for a in serving) / len(serving),
    )


def _good(answer: Answer, v1: str) -> bool:
    return answer.backend == v1 and not answer.failed


def _restored(after: list[Answer], v1: str, end: float) -> float | None:
    last_bad = max((i for i, a in enumerate(after) if not _good(a, v1)), default=None)
    if last_bad is None or last_bad + 1 >= len(after):
        return None
    moment = after[last_bad + 1].sent
    return moment - after[0].sent if end - moment >= QUIET_S else None


def _first_quiet(after: list[Answer], v1: str) -> float | None:
    for i, answer in enumerate(after):
        if not _good(answer, v1):
            continue
        run_end = next((b.sent for b in after[i:] if not _good(b, v1)), None)
        if (run_end is None and after[-1].sent - answer.sent >= QUIET_S) or (
            run_end is not None and run_end - answer.sent >= QUIET_S
        ):
            return answer.sent - after[0].sent
    return None
