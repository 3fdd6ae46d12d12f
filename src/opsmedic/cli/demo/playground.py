"""The seed's SRE playground pair: `data` answers /api/*, `info` calls it for every page.

python -m opsmedic.cli.demo.playground data --port P [--delay 0.01]
python -m opsmedic.cli.demo.playground info --port P --data http://127.0.0.1:Q

The seed's objectives: `data` answers in < 200 ms, `info` in < 50 ms; `info` depends on
`data` (services: info: depends_on: [data]), so a slow `data` breaks `info` first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = "opsmedic.cli.demo.playground"
# What a service answers: path → (status, JSON body).
Answer = Callable[[str], tuple[int, object]]
ITEMS = [{"id": 1, "name": "disk"}, {"id": 2, "name": "dns"}, {"id": 3, "name": "release"}]


class _Handler(BaseHTTPRequestHandler):
    answer: Answer  # set per service by serve()

    def do_GET(self) -> None:
        status, body = type(self).answer(self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def data_answer(delay: float) -> Answer:
    def answer(path: str) -> tuple[int, object]:
        if not path.startswith("/api/"):
            return 404, {"error": f"no route {path}; data answers /api/*"}
        time.sleep(delay)  # the work a real data service does; --delay makes it slow
        return 200, {"path": path, "items": ITEMS}

    return answer


def info_answer(data_url: str) -> Answer:
    def answer(path: str) -> tuple[int, object]:
        if path != "/":
            return 404, {"error": f"no route {path}; info answers /"}
        try:
            # Under info's own 50 ms objective: a data service slower than that fails info.
            with urllib.request.urlopen(data_url + "/api/items", timeout=0.05) as resp:  # noqa: S310 - the configured data URL
                items = json.load(resp)["items"]
        except (OSError, ValueError, KeyError) as exc:  # URLError and timeouts are OSErrors
            return 502, {"error": f"data at {data_url} failed: {exc}"}
        return 200, {"items": len(items), "names": [i["name"] for i in items]}

    return answer


def serve(port: int, answer: Answer) -> None:
    handler = type("Handler", (_Handler,), {"answer": staticmethod(answer)})
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever(poll_interval=0.05)


def main() -> int:
    parser = argparse.ArgumentParser(prog=MARKER)
    commands = parser.add_subparsers(dest="service", required=True)
    data = commands.add_parser("data", help="answers /api/* (objective: < 200 ms)")
    data.add_argument("--port", type=int, required=True)
    data.add_argument("--delay", type=float, default=0.0, help="seconds per answer")
    info = commands.add_parser("info", help="calls data for / (objective: < 50 ms)")
    info.add_argument("--port", type=int, required=True)
    info.add_argument("--data", required=True, help="the data service's base URL")
    args = parser.parse_args()
    if args.service == "data":
        serve(args.port, data_answer(args.delay))
    else:
        serve(args.port, info_answer(args.data.rstrip("/")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
