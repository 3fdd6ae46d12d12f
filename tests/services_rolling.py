"""A rolling rig: Debian's nginx on loopback in front of four instances of the demo shortener.

Each instance is a real process (`python -m opsmedic.cli.demo.shortener serve`) with its own
root, `instances/HOST:PORT`: its versions (v1 good, v2 the seed's `json.loads` bug answering
500, v3 good again), its `current` symlink, and its log, where every reload names the version
loaded. `shortener switch --root ROOT VERSION` flips one instance, as a rolling service's
switch step does for `{{ instance }}`. nginx logs in the `opsmedic` format and proxies `/`.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsmedic.cli.demo import shortener
from opsmedic.releases.access_log import LOG_FORMAT
from opsmedic.releases.nginx import NginxSettings, UpstreamFile, render

if __package__:
    from .services import HOST, START_TIMEOUT, _program, _stop, wait_for_port
    from .services_nginx import running_nginx
    from .services_tls import _free_ports, _nginx_conf
else:
    from services import HOST, START_TIMEOUT, _program, _stop, wait_for_port
    from services_nginx import running_nginx
    from services_tls import _free_ports, _nginx_conf

UPSTREAM = "api"
INSTANCES = 4
VERSIONS = ("v1", "v2", "v3")


@dataclass(frozen=True)
class RollingRig:
    """The running rig: requests go to `url`, nginx balances them over `instances`."""

    url: str
    instances: list[str]
    root: Path
    settings: NginxSettings
    access_log: Path
    error_log: Path
    upstream_file: Path

    @property
    def releases(self) -> Path:
        """The versions directory a service's `versions:` names (one entry per version)."""
        return self.root / "releases"

    def instance_root(self, instance: str) -> Path:
        return self.root / "instances" / instance

    def serving(self) -> dict[str, str]:
        """Each instance's answer to /version, asked directly."""
        return {i: httpx.get(f"http://{i}/version", timeout=5).text for i in self.instances}

    def loaded(self, instance: str) -> list[str]:
        """Every version the instance loaded on a reload, oldest first (its log)."""
        log = self.instance_root(instance) / "shortener.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.rsplit(" ", 1)[-1] for line in lines if "reloaded: " in line]


def _install(root: Path) -> None:
    shortener.install(root)
    (root / "versions" / "v3").mkdir()
    (root / "versions" / "v3" / "app.py").write_text(
        shortener.APP.format(version="v3", reader="load")
    )


@contextlib.contextmanager
def _instance(root: Path, port: int) -> Iterator[None]:
    _install(root)
    with (root / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", shortener.MARKER, "serve", "--root", str(root), "--port",
             str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(HOST, port, time.monotonic() + START_TIMEOUT, proc)
        yield
    finally:
        _stop(proc)


@pytest.fixture
def rolling_rig(tmp_path: Path) -> Iterator[RollingRig]:
    """nginx (one worker: its round robin is exact) in front of four shortener instances."""
    nginx = _program("nginx", package="nginx")
    port, *ports = _free_ports(1 + INSTANCES)
    instances = [f"{HOST}:{p}" for p in ports]
    for version in VERSIONS:
        (tmp_path / "releases" / version).mkdir(parents=True)
    upstream_file = tmp_path / "upstreams" / f"{UPSTREAM}.conf"
    upstream_file.parent.mkdir()
    upstream_file.write_text(render(UPSTREAM, dict.fromkeys(instances, 1), None))
    access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
    server = f"server {{ listen {HOST}:{port}; location / {{ proxy_pass http://{UPSTREAM}; }} }}"
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        _nginx_conf(
            tmp_path,
            [f"include {upstream_file.parent}/*.conf;", server],
            logging=[LOG_FORMAT, f"access_log {access_log} opsmedic;"],
        )
    )
    settings = NginxSettings(
        prefix=tmp_path, conf=conf, pid_file=tmp_path / "nginx.pid",
        upstreams={UPSTREAM: UpstreamFile(upstream_file)}, program=nginx,
        extra_args=("-e", str(error_log)),
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        for instance, instance_port in zip(instances, ports, strict=True):
            stack.enter_context(_instance(tmp_path / "instances" / instance, instance_port))
        stack.enter_context(running_nginx(settings, port, error_log))
        yield RollingRig(
            f"http://{HOST}:{port}", instances, tmp_path, settings, access_log, error_log,
            upstream_file,
        )  # fmt: skip
