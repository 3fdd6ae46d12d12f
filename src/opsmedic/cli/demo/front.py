"""The demo's load balancer: Debian's nginx on loopback, all of it in the demo's directory."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmedic.cli.demo.stage import stop_process
from opsmedic.errors import OpsmedicError
from opsmedic.releases.access_log import LOG_FORMAT
from opsmedic.releases.nginx import render

UPSTREAM = "shortener"
START_S = 10.0  # nginx starts in a few hundredths of a second; a loaded machine gets slack


def find_nginx() -> str | None:
    """nginx on PATH, or where Debian installs it (sbin is not on every user's PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which("nginx", path=path)


@dataclass(frozen=True, slots=True)
class Front:
    """An nginx of the demo's own: its prefix directory, program and loopback port."""

    prefix: Path
    program: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def path(self, name: str) -> Path:
        return self.prefix / name

    def router(self) -> dict[str, Any]:
        """The service's `canary.router:` for this nginx (docs/releases.md, Canary)."""
        return {"nginx": {
            "upstream": UPSTREAM, "include": str(self.path(f"upstreams/{UPSTREAM}.conf")),
            "access_log": str(self.path("access.log")), "prefix": str(self.prefix),
            "conf": str(self.path("nginx.conf")), "pid_file": str(self.path("nginx.pid")),
            "program": self.program, "error_log": str(self.path("error.log")),
        }}  # fmt: skip

    def write(self, serving: str, waiting: str) -> None:
        """nginx.conf, and the upstream file opsmedic's router owns from then on: every
        request to `serving`, none to `waiting` (nginx needs the upstream before it starts)."""
        (self.prefix / "upstreams").mkdir(parents=True)
        (self.prefix / "temp").mkdir()  # nginx makes the one level below it
        upstream = render(UPSTREAM, {serving: 1, waiting: 0}, None)
        self.path(f"upstreams/{UPSTREAM}.conf").write_text(upstream)
        # Debian's build puts these under /var/lib/nginx; the demo keeps to its directory.
        temp = [f"{kind}_temp_path {self.path('temp/' + kind)};"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]  # fmt: skip
        lines = [
            _worker_user(), "worker_processes 1;", f"pid {self.path('nginx.pid')};",
            "events { worker_connections 256; }", "http {", LOG_FORMAT,
            f"access_log {self.path('access.log')} opsmedic;", *temp,
            f"include {self.prefix / 'upstreams'}/*.conf;",
            f"server {{ listen 127.0.0.1:{self.port}; "
            f"location / {{ proxy_pass http://{UPSTREAM}; }} }}", "}",
        ]  # fmt: skip
        self.path("nginx.conf").write_text("\n".join(filter(None, lines)) + "\n")

    def start(self, processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Run nginx in the foreground of its own process, added to `processes` at once;
        return once it answers."""
        argv = [self.program, "-p", str(self.prefix), "-c", str(self.path("nginx.conf")),
                "-e", str(self.path("error.log")), "-g", "daemon off;"]  # fmt: skip
        with self.path("nginx.out").open("wb") as output:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        processes.append(proc)
        deadline = time.monotonic() + START_S
        # The pid file is written just before the workers start: the router signals it.
        while not self.path("nginx.pid").exists() or not _answers(self.port):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                said = self.path("error.log").read_text(errors="replace").strip()[-500:]
                raise OpsmedicError(f"the demo's nginx on {self.url} did not start: {said}")
            time.sleep(0.05)
        return proc


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _worker_user() -> str:
    """As root nginx drops its workers to `nobody`, whose group Debian calls nogroup."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user {nobody.pw_name} {grp.getgrgid(nobody.pw_gid).gr_name};"
