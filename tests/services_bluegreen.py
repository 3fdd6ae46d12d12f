"""A blue/green rig: Debian's nginx on loopback in front of two slots that real processes serve.

A slot is a port. `slots.py ROOT SLOT HOST:PORT VERSION` (the service's `start:` step) stops
the process serving that slot, if any, waits until its port is free, and starts a small HTTP
server there for VERSION in its own session, so it outlives the step (the old slot stays
warm). The server answers `/version` with the version and every other GET with it too, as
`releases/VERSION/behavior.json` says: a status, from which request on it fails, never ready
(`/version` answers 503 "starting"), when to break nginx's configuration (a stray file in
the directory nginx includes the upstream from); or the start script itself fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsmedic.releases.nginx import NginxRouter

if __package__:
    from .services import HOST
    from .services_nginx import UPSTREAM, Front, nginx_front
    from .services_tls import _free_ports
else:
    from services import HOST
    from services_nginx import UPSTREAM, Front, nginx_front
    from services_tls import _free_ports

SERVER = """
import http.server, json, os, sys
port, version, releases = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(os.path.join(releases, version, "behavior.json")) as f:
    behavior = json.load(f)
served = {"n": 0, "asked": 0}
def break_nginx():
    # Someone else's change to nginx's configuration, made while opsmedic moves traffic.
    with open(os.path.join(releases, "..", "upstreams", "stray.conf"), "w") as f:
        f.write("this is not nginx;\\n")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/version":
            status, body = (503, "starting") if behavior.get("never_ready") else (200, version)
            served["asked"] += 1
            if served["asked"] == behavior.get("break_nginx_when_asked"):
                break_nginx()
        else:
            served["n"] += 1
            failing = served["n"] > behavior.get("fails_after", 1 << 30)
            status = 500 if failing else behavior.get("status", 200)
            body = version if status == 200 else f"{version} failed"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever(poll_interval=0.05)
"""

START = """
import json, os, signal, socket, subprocess, sys, time
root, slot, backend, version = sys.argv[1:5]
port = int(backend.rsplit(":", 1)[1])
releases = os.path.join(root, "releases")
with open(os.path.join(releases, version, "behavior.json")) as f:
    behavior = json.load(f)
if behavior.get("start_fails"):
    sys.exit(f"cannot start {version}: its image is missing")
pid_file = os.path.join(root, slot + ".pid")
with open(os.path.join(root, "started.pids"), "a") as started:
    if os.path.exists(pid_file):
        with open(pid_file) as f:
            try:
                os.kill(int(f.read()), signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the old server's socket is closed
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.02)
    server = subprocess.Popen(
        [sys.executable, os.path.join(root, "slot_server.py"), str(port), version, releases],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started.write(f"{server.pid}\\n")
with open(pid_file + ".tmp", "w") as f:
    f.write(str(server.pid))
os.rename(pid_file + ".tmp", pid_file)
"""

# The versions the tests deploy, each as its server behaves.
BEHAVIORS: dict[str, dict[str, Any]] = {
    "v1": {},
    "v2": {},
    "v3": {"status": 500},  # fails the preview
    "v4": {"never_ready": True},  # never reports its version
    "v5": {"start_fails": True},
    # Healthy, but asked its version the second time (by the switch, after the warm-up's
    # first), it leaves nginx a file that makes it refuse the router's change.
    "v6": {"break_nginx_when_asked": 2},
    "v7": {"fails_after": 6},  # passes the preview (3-4 requests), fails on live traffic
}


@dataclass(frozen=True)
class BlueGreenRig:
    """nginx in front of the slots `blue` and `green`; `root` holds the releases and scripts."""

    front: Front
    router: NginxRouter
    root: Path
    slots: dict[str, str]

    def pid(self, slot: str) -> int:
        return int((self.root / f"{slot}.pid").read_text())


@pytest.fixture
def bluegreen_rig(tmp_path: Path) -> Iterator[BlueGreenRig]:
    """The rig with nothing started: nginx's upstream lists blue (live) and green, and
    nothing listens on either port until a deployment starts a slot."""
    port, blue_port, green_port = _free_ports(3)
    slots = {"blue": f"{HOST}:{blue_port}", "green": f"{HOST}:{green_port}"}
    root = tmp_path / "site"
    for version, behavior in BEHAVIORS.items():
        (root / "releases" / version).mkdir(parents=True)
        (root / "releases" / version / "behavior.json").write_text(json.dumps(behavior))
    (root / "slot_server.py").write_text(SERVER)
    (root / "slots.py").write_text(START)
    (root / "rules").mkdir()
    first = {slots["blue"]: 1, slots["green"]: 0}
    locations = [f"location / {{ proxy_pass http://{UPSTREAM}; }}"]
    try:
        with nginx_front(root, port, first, locations, None) as front:
            yield BlueGreenRig(front, NginxRouter(front.settings), root, slots)
    finally:
        started = root / "started.pids"
        for pid in started.read_text().split() if started.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
