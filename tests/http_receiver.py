"""A loopback HTTP server that answers 200 `{}` and keeps each request: the far end of an action."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any, ClassVar


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 200 to everything and keeps what it was sent (headers, path, body)."""

    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def _answer(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        self.seen.append((self.path, dict(self.headers), self.rfile.read(size)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def receiving() -> Iterator[str]:
    """Serve on a free loopback port, `Receiver.seen` emptied; yields the base URL."""
    Receiver.seen = []
    with serving(Receiver) as url:
        yield url


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
