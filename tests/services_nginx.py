"""A canary rig: Debian's nginx on loopback in front of two small HTTP backends.

The fixture `canary_rig` starts two backends (stdlib `ThreadingHTTPServer`, each answering
its own name, with a status and a delay a test can change) and an nginx whose main config
includes the upstream file opsmedic's nginx router owns, logs in the `opsmedic` log_format,
and proxies `/` (per-request weights), `/retry/` (500s retried on the other backend) and
`/sticky/` (the router's sticky map on the X-User header).
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


@pytest.fixture
def canary_rig(tmp_path: Path) -> Iterator[CanaryRig]:
    """nginx (one worker, so its round robin is exact) in front of a stable and a canary."""
    nginx = _program("nginx", package="nginx")
    port, stable_port, canary_port = _free_ports(3)
    stable, canary = Backend("stable", stable_port), Backend("canary", canary_port)
    upstream_file = tmp_path / "upstreams" / f"{UPSTREAM}.conf"
    sticky = Sticky("header", STICKY_HEADER)
    upstream_file.parent.mkdir()
    # nginx needs the upstream (and the sticky map's variable) before it can start at all.
    upstream_file.write_text(render(UPSTREAM, {stable.address: 1, canary.address: 0}, sticky))
    access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
    server = (
        f"server {{ listen {HOST}:{port}; "
        f"location / {{ proxy_pass http://{UPSTREAM}; }} "
        f"location /retry/ {{ proxy_pass http://{UPSTREAM}; "
        "proxy_next_upstream error timeout http_500; } "
        f"location /sticky/ {{ proxy_pass http://{route_variable(UPSTREAM)}; }} }}"
    )
    logging = [LOG_FORMAT, f"access_log {access_log} opsmedic;"]
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        _nginx_conf(tmp_path, [f"include {upstream_file.parent}/*.conf;", server], logging=logging)
    )
    settings = NginxSettings(
        prefix=tmp_path,
        conf=conf,
        pid_file=tmp_path / "nginx.pid",
        upstreams={UPSTREAM: UpstreamFile(upstream_file, sticky)},
        program=nginx,
        extra_args=("-e", str(error_log)),
    )
    try:
        with running_nginx(settings, port, error_log):
            yield CanaryRig(
                f"http://{HOST}:{port}", stable, canary, NginxRouter(settings), settings,
                access_log, error_log, upstream_file,
            )  # fmt: skip
    finally:
        for backend in (stable, canary):
            with contextlib.suppress(OSError):
                backend.stop()


@contextlib.contextmanager
def running_nginx(settings: NginxSettings, port: int, error_log: Path) -> Iterator[None]:
    """nginx in the foreground on `settings.conf`, serving `port`, until the block ends."""
    with (settings.prefix / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [
                settings.program,
                "-p",
                str(settings.prefix),
                "-c",
                str(settings.conf),
                "-e",
                str(error_log),
                "-g",
                "daemon off;",
            ],
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
        yield
    finally:
        _stop(proc)
