"""A rolling rig: Debian's nginx on loopback in front of four instances of the demo shortener.

Each instance is a real process (`python -m opsmedic.cli.demo.shortener serve`) with its own
root, `instances/HOST:PORT`: its versions (v1 good, v2 the seed's `json.loads` bug answering
500, v3 good again), its `current` symlink, and its log, where every reload names the version
loaded. `shortener switch --root ROOT VERSION` flips one instance, as a rolling service's
switch step does for `{{ instance }}`. nginx logs in the `opsmedic` format and proxies `/`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsmedic.cli.demo import shortener
from opsmedic.releases.nginx import NginxSettings

if __package__:
    from .services import HOST, serving
    from .services_nginx import nginx_front
    from .services_tls import _free_ports
else:
    from services import HOST, serving
    from services_nginx import nginx_front
    from services_tls import _free_ports

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
    argv = [sys.executable, "-m", shortener.MARKER, "serve", "--root", str(root), "--port",
            str(port)]  # fmt: skip
    with serving(argv, port, root / "stdout.log"):
        yield


@pytest.fixture
def rolling_rig(tmp_path: Path) -> Iterator[RollingRig]:
    """nginx (one worker: its round robin is exact) in front of four shortener instances."""
    port, *ports = _free_ports(1 + INSTANCES)
    instances = [f"{HOST}:{p}" for p in ports]
    for version in VERSIONS:
        (tmp_path / "releases" / version).mkdir(parents=True)
    location = f"location / {{ proxy_pass http://{UPSTREAM}; }}"
    with contextlib.ExitStack() as stack:
        for instance, instance_port in zip(instances, ports, strict=True):
            stack.enter_context(_instance(tmp_path / "instances" / instance, instance_port))
        front = stack.enter_context(
            nginx_front(tmp_path, port, dict.fromkeys(instances, 1), [location], None, UPSTREAM)
        )
        yield RollingRig(
            front.url, instances, tmp_path, front.settings, front.access_log, front.error_log,
            front.upstream_file,
        )  # fmt: skip
