"""A tiny web app for the demo: healthy until told to wedge; `restart` replaces it safely.

python -m opsmedic.cli.demo.webapp serve   --state-dir D --port P
python -m opsmedic.cli.demo.webapp restart --state-dir D --port P
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

MARKER = "opsmedic.cli.demo.webapp"


class PlainHandler(BaseHTTPRequestHandler):
    """What the demo's small apps share: plain replies, and no request log."""

    def reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the demo's terminal for opsmedic's own output


class _Handler(PlainHandler):
    wedged = False

    def do_GET(self) -> None:
        if self.path == "/break":
            # Simulates a leak or deadlock: only a restart brings the process back.
            type(self).wedged = True
            self.reply(200, b"wedged now\n")
        elif self.path == "/health":
            self.reply(500, b"wedged\n") if self.wedged else self.reply(200, b"ok\n")
        else:
            self.reply(404, b"not found\n")


def serve(state_dir: Path, port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    (state_dir / "webapp.pid").write_text(str(os.getpid()))
    server.serve_forever()  # SIGTERM's default action ends it; nothing to flush


def running(state_dir: Path) -> psutil.Process | None:
    """The previous instance, only if the pid file names a process that is really ours."""
    try:
        proc = psutil.Process(int((state_dir / "webapp.pid").read_text()))
        if MARKER in " ".join(proc.cmdline()):
            return proc
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def restart(state_dir: Path, port: int) -> int:
    old = running(state_dir)
    if old is not None:
        old.terminate()
        try:
            old.wait(timeout=5)
        except psutil.TimeoutExpired:
            old.kill()
        print(f"stopped webapp pid {old.pid}")
    new = subprocess.Popen(
        [sys.executable, "-m", MARKER, "serve", "--state-dir", str(state_dir), "--port", str(port)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                print(f"started webapp pid {new.pid}, healthy")
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    print(f"webapp pid {new.pid} did not become healthy", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(prog=MARKER)
    parser.add_argument("command", choices=["serve", "restart"])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.state_dir, args.port)
        return 0
    return restart(args.state_dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
