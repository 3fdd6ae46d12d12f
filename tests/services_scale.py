"""A scaling rig: Debian's nginx on loopback in front of the instances of one service, each a
real process (tests/scale_instance.py) listening on base_port + N.

The fixture `scale_rig` starts nginx and instance 1 (as an operator would: opsmedic did not
start it, so it finds it in the upstream); the scale action starts and stops the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from opsmedic.config.services import ServiceConfig
from opsmedic.releases.nginx import NginxSettings
from opsmedic.releases.scale_instances import Launcher

if __package__:
    from .services import HOST, serving
    from .services_nginx import Front, nginx_front
    from .services_tls import _free_ports
else:
    from services import HOST, serving
    from services_nginx import Front, nginx_front
    from services_tls import _free_ports

UPSTREAM = "app"
INSTANCE = Path(__file__).resolve().parent / "scale_instance.py"
MAX = 3  # instances 1..MAX


def free_base(count: int) -> int:
    """A base port whose next `count` ports are free now (instance N listens on base + N)."""
    for _ in range(100):
        (base,) = _free_ports(1)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base + 1, base + count + 1):
                    stack.enter_context(socket.socket()).bind((HOST, port))
            except OSError:
                continue
            return base
    raise RuntimeError("no free port range")


def instance_argv(delay_file: Path, *, unhealthy: bool = False) -> list[str]:
    """The instance command as a service's `scale.command.argv` names it."""
    extra = ["--unhealthy"] if unhealthy else []
    return [sys.executable, str(INSTANCE), "--port", "{{ port }}", "--delay-file",
            str(delay_file), *extra]  # fmt: skip


def instance_at(port: int, delay_file: Path) -> list[str]:
    """The instance command for `port`, as started by hand."""
    return [a.replace("{{ port }}", str(port)) for a in instance_argv(delay_file)]


@dataclass(frozen=True)
class ScaleRig:
    """The running rig: requests go to `url`; nginx balances them over the upstream `app`."""

    url: str
    root: Path
    base_port: int
    settings: NginxSettings
    front: Front
    delay_file: Path  # the delay (seconds) every instance waits before answering
    # The scalers' launchers, by service: the handles of the processes they started.
    children: list[dict[str, Launcher]] = field(default_factory=list)

    def address(self, n: int) -> str:
        return f"{HOST}:{self.base_port + n}"

    def router(self) -> dict[str, Any]:
        nginx = self.settings
        return {"nginx": {
            "upstream": UPSTREAM, "include": str(self.front.upstream_file),
            "access_log": str(self.front.access_log), "prefix": str(nginx.prefix),
            "conf": str(nginx.conf), "pid_file": str(nginx.pid_file), "program": nginx.program,
            "error_log": str(self.front.error_log),
        }}  # fmt: skip

    def scale(self, **changes: Any) -> dict[str, Any]:
        """The service's `scale:` section; `unhealthy=True` starts instances that never pass."""
        unhealthy = changes.pop("unhealthy", False)
        return {
            "router": self.router(),
            "command": {"argv": instance_argv(self.delay_file, unhealthy=unhealthy)},
            "base_port": self.base_port, "min": 1, "max": MAX, "cooldown": "0s",
            "health": {"path": "/health", "timeout": "20s"}, "drain_timeout": "10s",
            **changes,
        }  # fmt: skip

    def service(self, **changes: Any) -> dict[str, Any]:
        return {
            "versions": str(self.root), "switch": [{"noop": {}}],
            "scale": self.scale(**changes),
        }  # fmt: skip

    def services(self, **changes: Any) -> dict[str, ServiceConfig]:
        return {"app": ServiceConfig.model_validate(self.service(**changes))}

    def upstream(self) -> str:
        return self.front.upstream_file.read_text()


@contextlib.contextmanager
def _first_instance(rig_root: Path, port: int, delay_file: Path) -> Iterator[None]:
    with serving(instance_at(port, delay_file), port, rig_root / "instance-1.log"):
        yield


@pytest.fixture
def scale_rig(tmp_path: Path) -> Iterator[ScaleRig]:
    """nginx in front of instance 1 of `app`."""
    (port,) = _free_ports(1)
    base = free_base(MAX)
    delay_file = tmp_path / "delay"
    delay_file.write_text("0")
    # No retry on the next instance: a request sent to a stopped instance fails for the client.
    locations = [f"location / {{ proxy_pass http://{UPSTREAM}; proxy_next_upstream off; }}"]
    first = {f"{HOST}:{base + 1}": 1}
    with _first_instance(tmp_path, base + 1, delay_file):
        nginx_root = tmp_path / "nginx"
        nginx_root.mkdir()
        try:
            with nginx_front(nginx_root, port, first, locations, None, UPSTREAM) as front:
                rig = ScaleRig(front.url, tmp_path, base, front.settings, front, delay_file)
                yield rig
            _stop_recorded(tmp_path / "state" / "scale" / "app.json")
            for launchers in rig.children:
                for launcher in launchers.values():
                    for proc in launcher.children.values():
                        proc.wait()
        finally:
            _stop_recorded(tmp_path / "state" / "scale" / "app.json")


def _stop_recorded(record: Path) -> None:
    """Kill the instances the scaler's record still names (a test that failed half-way)."""
    if not record.exists():
        return
    for instance in json.loads(record.read_text())["instances"].values():
        if instance["pid"] is None:
            continue
        with contextlib.suppress(psutil.Error):
            found = psutil.Process(instance["pid"])
            if abs(found.create_time() - instance["create_time"]) < 0.01:
                os.killpg(instance["pid"], signal.SIGKILL)
