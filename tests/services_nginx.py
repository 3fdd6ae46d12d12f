"""A canary rig: Debian's nginx on loopback in front of two small HTTP backends.

The fixture `canary_rig` starts two backends (stdlib `ThreadingHTTPServer`, each answering
its own name, with a status and a delay a test can change) and an nginx whose main config
includes the upstream file opsmedic's nginx router owns, logs in the `opsmedic` log_format,
and proxies `/` (per-request weights), `/retry/` (500s retried on the other backend) and
`/sticky/` (the router's sticky map on the X-User header). `nginx_front` starts such an
nginx alone, for other rigs (tests/services_bluegreen.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsmedic.releases.access_log import LOG_FORMAT
from opsmedic.releases.nginx import (
    NginxRouter,
    NginxSettings,
    Sticky,
    UpstreamFile,
    render,
    route_variable,
)

if __package__:
    from .services import HOST, START_TIMEOUT, _fail, _program, _stop, wait_for_port
    from .services_tls import _free_ports, _nginx_conf
else:
    from services import HOST, START_TIMEOUT, _fail, _program, _stop, wait_for_port
    from services_tls import _free_ports, _nginx_conf

UPSTREAM = "app"
STICKY_HEADER = "X-User"


class Backend:
    """One backend: answers every GET with its name, `status` and after `delay` seconds."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.status = 200
        self.delay = 0.0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if backend.delay:
                    time.sleep(backend.delay)
                body = backend.name.encode()
                self.send_response(backend.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the access log under test is nginx's

        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.server.daemon_threads = True
        self.address = f"{HOST}:{port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class CanaryRig:
    """The running rig: the router drives `UPSTREAM`, requests go to `url`."""

    url: str
    stable: Backend
    canary: Backend
    router: NginxRouter
    settings: NginxSettings
    access_log: Path
    error_log: Path
    upstream_file: Path


@dataclass(frozen=True)
class Front:
    """A running nginx: requests go to `url`; its router settings and files."""

    url: str
    settings: NginxSettings
    access_log: Path
    error_log: Path
    upstream_file: Path


@contextlib.contextmanager
def nginx_front(
    root: Path, port: int, first: dict[str, int], locations: list[str], sticky: Sticky | None,
    upstream: str = UPSTREAM,
) -> Iterator[Front]:  # fmt: skip
    """nginx (one worker, so its round robin is exact) on `port`, proxying `locations` to
    `upstream`, whose file opsmedic's router owns and which starts with the weights `first`."""
    nginx = _program("nginx", package="nginx")
    upstream_file = root / "upstreams" / f"{upstream}.conf"
    upstream_file.parent.mkdir()
    # nginx needs the upstream (and the sticky map's variable) before it can start at all.
    upstream_file.write_text(render(upstream, first, sticky))
    access_log, error_log = root / "access.log", root / "error.log"
    server = f"server {{ listen {HOST}:{port}; {' '.join(locations)} }}"
    logging = [LOG_FORMAT, f"access_log {access_log} opsmedic;"]
    conf = root / "nginx.conf"
    conf.write_text(
        _nginx_conf(root, [f"include {upstream_file.parent}/*.conf;", server], logging=logging)
    )
    settings = NginxSettings(
        prefix=root,
        conf=conf,
        pid_file=root / "nginx.pid",
        upstreams={upstream: UpstreamFile(upstream_file, sticky)},
        program=nginx,
        extra_args=("-e", str(error_log)),
    )
    with (root / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [nginx, "-p", str(root), "-c", str(conf), "-e", str(error_log), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        try:
            wait_for_port(HOST, port, deadline, proc)
            while not settings.pid_file.exists():  # written just before the workers start
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {settings.pid_file}")
                time.sleep(0.05)
        except (RuntimeError, TimeoutError) as exc:
            _fail(f"nginx did not start: {exc}", error_log)
        yield Front(f"http://{HOST}:{port}", settings, access_log, error_log, upstream_file)
    finally:
        _stop(proc)


@pytest.fixture
def canary_rig(tmp_path: Path) -> Iterator[CanaryRig]:
    """nginx in front of a stable and a canary."""
    port, stable_port, canary_port = _free_ports(3)
    stable, canary = Backend("stable", stable_port), Backend("canary", canary_port)
    locations = [
        f"location / {{ proxy_pass http://{UPSTREAM}; }}",
        f"location /retry/ {{ proxy_pass http://{UPSTREAM}; "
        "proxy_next_upstream error timeout http_500; }",
        f"location /sticky/ {{ proxy_pass http://{route_variable(UPSTREAM)}; }}",
    ]
    sticky = Sticky("header", STICKY_HEADER)
    try:
        first = {stable.address: 1, canary.address: 0}
        with nginx_front(tmp_path, port, first, locations, sticky) as front:
            yield CanaryRig(
                front.url, stable, canary, NginxRouter(front.settings), front.settings,
                front.access_log, front.error_log, front.upstream_file,
            )  # fmt: skip
    finally:
        for backend in (stable, canary):
            with contextlib.suppress(OSError):
                backend.stop()
