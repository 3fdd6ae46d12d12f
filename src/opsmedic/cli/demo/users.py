"""The demo's users: a bounded client sending GET / through the load balancer at a fixed pace."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(slots=True)
class Users:
    """GET `url` `rate` times a second, each on a new connection (a reload moves it at once),
    at most `limit` requests; `answers` holds (time.time(), status, or None for no answer)."""

    url: str
    rate: float = 100.0
    limit: int = 3000  # 30 s at 100/s: a scene that hangs still stops sending
    answers: list[tuple[float, int | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._send, name="demo-users", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def since(self, start: float) -> list[int | None]:
        """The statuses of the requests answered (or not) from `start` (time.time()) on."""
        return [status for at, status in list(self.answers) if at >= start]

    def _send(self) -> None:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        began = time.monotonic()
        for sent in range(self.limit):
            # Paced from the start, so a slow answer does not lower the rate after it.
            if self._stop.wait(max(0.0, began + sent / self.rate - time.monotonic())):
                return
            self.answers.append((time.time(), _get(host, port)))


def _get(host: str, port: int) -> int | None:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
