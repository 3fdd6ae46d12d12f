"""Test helper: a tiny versioned HTTP app (the seed's URL shortener) behind a `current` symlink.

v1 reads its data with `json.load(f)` and answers 200; v2 has the seed's bug, `json.loads(f)`,
and answers 500 to every request; v3 is v1 again, for a switch that fails half way. The
server loads `current/app.py` at start and again on SIGHUP (the switch steps flip the
symlink and send it), and answers /version with the loaded version.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opsmedic.runtime import Runtime, build, build_registry

SERVER = """
import http.server, importlib.util, os, signal, sys, traceback
root, port_file = sys.argv[1], sys.argv[2]
state = {"n": 0}
def load(*_):
    state["n"] += 1
    path = os.path.realpath(os.path.join(root, "current", "app.py"))
    spec = importlib.util.spec_from_file_location(f"app{state['n']}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state["app"] = module
load()
signal.signal(signal.SIGHUP, load)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        app = state["app"]
        if self.path == "/version":
            status, body = 200, app.VERSION
        else:
            try:
                status, body = 200, app.handle(root)
            except Exception:
                # The whole traceback, as a debug page shows it: "what changed" reads it.
                status, body = 500, traceback.format_exc()
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever(poll_interval=0.05)
"""

APP = """
import json, os
VERSION = {version!r}
def handle(root):
    with open(os.path.join(root, "data.json")) as f:
        return json.dumps(json.{reader}(f))
"""

# Flips `current` atomically (a temporary name per switch: two may run at once), then asks
# the server to load it.
SWITCH = (
    'ln -sfn "releases/$1" "current.$$" && mv -T "current.$$" current && kill -HUP "$(cat app.pid)"'
)


@dataclass(frozen=True, slots=True)
class Site:
    root: Path
    url: str
    process: subprocess.Popen[bytes]

    def version(self) -> str:
        return httpx.get(self.url + "/version", timeout=5).text

    def status(self) -> int:
        return httpx.get(self.url + "/", timeout=5).status_code


def write_releases(root: Path) -> None:
    for version, reader in (("v1", "load"), ("v2", "loads"), ("v3", "load")):
        (root / "releases" / version).mkdir(parents=True)
        (root / "releases" / version / "app.py").write_text(
            APP.format(version=version, reader=reader)
        )
    (root / "data.json").write_text(json.dumps({"abc": "https://example.com/"}))
    (root / "server.py").write_text(SERVER)
    (root / "rules").mkdir()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with release_site(tmp_path) as found:
        yield found


@contextmanager
def release_site(root: Path) -> Iterator[Site]:
    """The app serving v1 from `root` on a free loopback port, stopped afterwards."""
    write_releases(root)
    os.symlink("releases/v1", root / "current")
    port_file = root / "port"
    process = subprocess.Popen([sys.executable, str(root / "server.py"), str(root), str(port_file)])
    try:
        (root / "app.pid").write_text(str(process.pid))
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the test app did not start")
            time.sleep(0.02)
        yield Site(root, f"http://127.0.0.1:{port_file.read_text()}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def site_config(site: Site, *, bake: str = "1s", checks: str = "", extra: str = "") -> str:
    """An opsmedic.yaml whose service `shortener` switches with SWITCH and checks `/`."""
    checks = (
        checks
        or f"""
      - name: home
        http: {{url: "{site.url}/"}}
        interval: 50ms
        min_samples: 3
        on_no_data: fail"""
    )
    return f"""
store: sqlite:///{site.root}/opsmedic.db
api: {{enabled: false}}
services:
  shortener:
    versions: releases
    current: current
    version_url: "{site.url}/version"
    bake: {bake}
    switch_timeout: 5s
    verify_timeout: 3s
    switch:
      - run_command:
          argv: [sh, -c, '{SWITCH}', switch, "{{{{ version }}}}"]
          cwd: .
      - run_command:
          # v3 stands for a release whose last step fails, after the symlink moved.
          argv: [sh, -c, 'test "$1" != v3', check, "{{{{ version }}}}"]
    verify:{checks}
{extra}
"""


def site_services(site: Site) -> dict[str, Any]:
    """site_config's `services:`, to change before write_services or running_api."""
    services: dict[str, Any] = yaml.safe_load(site_config(site))["services"]
    return services


def write_services(site: Site, services: dict[str, Any]) -> Path:
    """site_config's opsmedic.yaml with its `services:` replaced; its path."""
    config: dict[str, Any] = yaml.safe_load(site_config(site))
    config["services"] = services
    path = site.root / "opsmedic.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@asynccontextmanager
async def releases_runtime(site: Site, services: dict[str, Any]) -> AsyncIterator[Runtime]:
    """opsmedic built on write_services' config, its engine started, until the block ends."""
    found = build(write_services(site, services), registry=build_registry())
    await found.engine.start()
    try:
        yield found
    finally:
        await found.engine.close()
