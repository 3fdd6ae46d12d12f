"""bench/rollback.py's rig: the seed's shortener v1 and v2, nginx and HAProxy on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _proc import log
from idle import start, stop

from opsmedic.cli.demo.shortener import install
from opsmedic.releases.access_log import LOG_FORMAT
from opsmedic.releases.nginx import render
from services_tls import _free_ports  # the tests' helper: distinct free loopback ports

HOST = "127.0.0.1"
UPSTREAM = "shortener"
START_TIMEOUT_S = 30.0
KEEPALIVE_S = 65  # Debian's nginx.conf keepalive_timeout, and HAProxy's keep-alive here too
HAPROXY_WEIGHTS = (67, 33)  # the seed's split


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} in {START_TIMEOUT_S:g}s")


@dataclass(frozen=True)
class Backends:
    """Two shortener servers: v1 (its `current` → v1) and v2 (→ v2: 500 on every GET /)."""

    v1: str
    v2: str
    root: Path  # v1's root; its versions/ directory holds v1 and v2 (opsmedic's `versions`)


@contextlib.contextmanager
def backends(work: Path) -> Iterator[Backends]:
    ports = _free_ports(2)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for version, port in zip(("v1", "v2"), ports, strict=True):
            root = work / f"shortener-{version}"
            root.mkdir()
            install(root)  # both versions, `current` → v1
            (root / "current").unlink()
            (root / "current").symlink_to(Path("versions") / version)
            module = "opsmedic.cli.demo.shortener"
            argv = [sys.executable, "-m", module, "serve", "--root", str(root), "--port", str(port)]
            procs.append(start(argv, work, f"shortener-{version}"))
            wait_port(port, procs[-1], f"shortener {version}")
        yield Backends(f"{HOST}:{ports[0]}", f"{HOST}:{ports[1]}", work / "shortener-v1")
    finally:
        for proc in procs:
            stop(proc)


@dataclass(frozen=True)
class Nginx:
    port: int
    prefix: Path
    conf: Path
    pid_file: Path
    include: Path
    access_log: Path
    error_log: Path
    program: str


def _worker_user() -> str:
    # As root nginx drops its workers to `nobody`, whose group Debian calls nogroup.
    return "user nobody nogroup;" if os.geteuid() == 0 else ""


@contextlib.contextmanager
def nginx(work: Path, pair: Backends) -> Iterator[Nginx]:
    """Debian's nginx with its defaults where they matter (worker_processes auto,
    keepalive_timeout 65), logging in opsmedic's format, naming the backend that answered in
    an X-Backend header, proxying to the upstream file opsmedic's router owns (v1 only)."""
    program = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = work / "nginx"
    (prefix / "upstreams").mkdir(parents=True)
    (port,) = _free_ports(1)
    site = Nginx(port, prefix, prefix / "nginx.conf", prefix / "nginx.pid",
                 prefix / "upstreams" / f"{UPSTREAM}.conf", prefix / "access.log",
                 prefix / "error.log", program)  # fmt: skip
    site.include.write_text(render(UPSTREAM, {pair.v1: 1}, None))
    temp = [f"{kind}_temp_path {prefix / kind};" for kind in
            ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]  # fmt: skip
    site.conf.write_text("\n".join(filter(None, [
        _worker_user(), "worker_processes auto;", f"pid {site.pid_file};",
        "events { worker_connections 1024; }", "http {", LOG_FORMAT,
        f"access_log {site.access_log} opsmedic;", f"keepalive_timeout {KEEPALIVE_S};", *temp,
        f"include {site.include.parent}/*.conf;",
        f"server {{ listen {HOST}:{port}; location / {{ proxy_pass http://{UPSTREAM}; "
        "add_header X-Backend $upstream_addr always; } }", "}",
    ])) + "\n")  # fmt: skip
    proc = start([program, "-p", str(prefix), "-c", str(site.conf), "-e", str(site.error_log),
                  "-g", "daemon off;"], work, "nginx")  # fmt: skip
    try:
        wait_port(port, proc, "nginx")
        yield site
    finally:
        stop(proc)


def haproxy_program() -> str:
    """Debian's haproxy, installed on first use as the other benches install their peers."""
    found = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if found is None:
        log("haproxy is missing: apt-get install -y haproxy")
        subprocess.run(["apt-get", "install", "-y", "haproxy"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found


def haproxy_version(program: str) -> str:
    out = subprocess.run([program, "-v"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else out.splitlines()[0]


def nginx_version(program: str) -> str:
    out = subprocess.run([program, "-v"], capture_output=True, text=True, check=True).stderr
    return out.strip().split("/", 1)[-1]


def haproxy_conf(work: Path, port: int, pair: Backends) -> str:
    """67/33 with passive layer-7 observation (10 consecutive errors mark a server down, the
    documented default) and an active check of the same page the users request, so a server
    marked down stays down; v2 starts in maintenance and goes live over the runtime API."""
    w1, w2 = HAPROXY_WEIGHTS
    return f"""global
    stats socket {work / "haproxy.sock"} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client {KEEPALIVE_S}s
    timeout server 10s
frontend web
    bind {HOST}:{port}
    default_backend {UPSTREAM}
backend {UPSTREAM}
    balance roundrobin
    option httpchk GET /
    http-response set-header X-Backend %[srv_name]
    default-server check observe layer7 error-limit 10 on-error mark-down
    server v1 {pair.v1} weight {w1}
    server v2 {pair.v2} weight {w2} disabled
"""


def runtime_api(sock: Path, command: str) -> str:
    """One command on HAProxy's runtime API socket; its answer."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5.0)
        conn.connect(str(sock))
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


@contextlib.contextmanager
def haproxy(work: Path, program: str, pair: Backends) -> Iterator[tuple[int, Path]]:
    """A fresh HAProxy (port, runtime API socket); its log (-db: on stderr) says what marked
    a server down."""
    (port,) = _free_ports(1)
    conf = work / "haproxy.cfg"
    conf.write_text(haproxy_conf(work, port, pair))
    proc = start([program, "-db", "-f", str(conf)], work, "haproxy")
    try:
        wait_port(port, proc, "haproxy")
        yield port, work / "haproxy.sock"
    finally:
        stop(proc)


def haproxy_down_reasons(work: Path) -> list[str]:
    """Why HAProxy marked v2 down, from its log: `Health analyze` is the passive observation
    (on-error mark-down), `Layer7 wrong status` the active check."""
    text = (work / "haproxy.stderr.txt").read_text(errors="replace")
    return re.findall(r"Server \S+/v2 is DOWN, reason: ([^,]+)", text)
