"""A scaled service's instance for the tests and the bench: a real process on loopback.

    python tests/scale_instance.py --port P [--unhealthy] [--delay-file F]

`/health` answers 200 (503 with --unhealthy: an instance that never becomes healthy); every
other path answers `instance P` after the delay (seconds) that F holds, read per request, so a
test or the bench injects latency into a running instance. SIGTERM stops it once the requests
in flight are answered.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unhealthy", action="store_true")
    parser.add_argument("--delay-file", type=Path)
    args = parser.parse_args()
    name = f"instance {args.port}".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                status, body = (503, b"starting") if args.unhealthy else (200, b"ok")
            else:
                time.sleep(_delay(args.delay_file))
                status, body = 200, name
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = False  # server_close() then waits for the requests in flight

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


def _delay(path: Path | None) -> float:
    try:
        return float(path.read_text()) if path is not None else 0.0
    except (OSError, ValueError):
        return 0.0


if __name__ == "__main__":
    main()
