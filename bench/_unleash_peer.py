"""The Unleash peer: a real unleash-server and UnleashClient readers, measured like opsmedic.

Imported by bench/flags.py (`running_unleash`, `measure`); runs alone too:

    .venv/bin/python bench/_unleash_peer.py [--flips 10] [--refresh-s S] [--readers 4]

The server is npm's `unleash-server` (pinned below) on Debian's Node.js, installed into the
git-ignored `.bench/unleash-server`, on a fresh PostgreSQL from tests/services.py, on
loopback, with an admin and a client API token created at start (`INIT_*_API_TOKENS`).
Reader processes (bench/_unleash_reader.py, in the peer's own venv `.bench/unleash-venv`)
run PyPI's `UnleashClient` at its default refresh interval unless `--refresh-s` says
otherwise, and call `is_enabled` in a loop. The writer toggles the flag in the environment
through the admin API; a sample is the time from just before the writer's request to the
moment the last reader's `is_enabled` returns the new value (CLOCK_MONOTONIC, one clock for
every process of a machine). Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _proc import log, percentile, reap  # noqa: E402

from services import HOST, free_port, running_postgres  # noqa: E402
from services import _stop as stop_server  # noqa: E402

BENCH_DIR = HERE.parent / ".bench"
# The newest unleash-server whose `engines` accepts the Node.js 20 that apt installs here
# (7.6 and later want Node >= 22); pinned so that figures stay comparable between runs.
SERVER_VERSION = "7.5.1"
NODE_MAJOR_MIN = 20
CLIENT_PACKAGE, CLIENT_VERSION = "UnleashClient", "6.9.1"
NODE_PACKAGES = ["nodejs", "npm"]
FLAG = "bench_flag"
PROJECT, ENVIRONMENT = "default", "development"
ADMIN_TOKEN = "*:*.opsmedic-bench-admin"
CLIENT_TOKEN = f"{PROJECT}:{ENVIRONMENT}.opsmedic-bench-client"
DB_ROLE = DB_NAME = "unleash"
START_WAIT_S = 180.0  # generous: migrations on a fresh database took ≈3 s here
READY_WAIT_S = 90.0  # reader processes: start Python, import, register, first fetch
# A flip not seen by every reader within two refresh intervals and this margin fails the run.
FLIP_MARGIN_S = 10.0

# Started with `node`, configured from the environment (NODE_PATH finds the installed
# package by name: its `exports` map is only read for a bare name, not a directory path).
START_SCRIPT = """\
const unleash = require("unleash-server");
unleash
  .start({
    db: {
      host: process.env.BENCH_DB_HOST,
      port: Number(process.env.BENCH_DB_PORT),
      user: process.env.BENCH_DB_USER,
      password: process.env.BENCH_DB_USER,
      database: process.env.BENCH_DB_NAME,
      ssl: false,
    },
    server: { host: process.env.BENCH_HOST, port: Number(process.env.BENCH_PORT) },
    versionCheck: { enable: false },
    logLevel: "warn",
  })
  .then(() => console.log("BENCH_UNLEASH_READY"))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
"""


@dataclass(frozen=True, slots=True)
class UnleashPeer:
    """A running Unleash server on which the bench flag exists (`measure` switches it)."""

    url: str  # the API base the client takes, http://127.0.0.1:PORT/api
    server: str  # "unleash-server 7.5.1"
    client_python: Path  # an interpreter that has the pinned UnleashClient
    workdir: Path


def _ensure_node() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        log(f"node/npm not found: apt-get install -y {' '.join(NODE_PACKAGES)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", *NODE_PACKAGES], check=True, env=env,
                       stdout=sys.stderr)  # fmt: skip
        node = shutil.which("node")
        if node is None:
            raise RuntimeError(f"{' '.join(NODE_PACKAGES)} installed but `node` is not on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    # Debian 12's own nodejs is 18: npm would install the server and it would fail at start.
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < NODE_MAJOR_MIN:
        raise RuntimeError(f"unleash-server {SERVER_VERSION} needs Node.js >= {NODE_MAJOR_MIN}, "
                           f"{node} is {version.stdout.strip()}")  # fmt: skip
    return node


def ensure_server(root: Path = BENCH_DIR) -> Path:
    """The pinned unleash-server under root/unleash-server (npm-installed unless present)."""
    _ensure_node()
    home = root / "unleash-server"
    module = home / "node_modules" / "unleash-server"
    manifest = module / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != SERVER_VERSION:
        log(f"installing unleash-server@{SERVER_VERSION} into {home} (npm)")
        home.mkdir(parents=True, exist_ok=True)
        (home / "package.json").write_text('{"name": "opsmedic-bench-unleash", "private": true}')
        started = time.perf_counter()
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--omit=dev",
             f"unleash-server@{SERVER_VERSION}"],
            check=True, cwd=home, stdout=sys.stderr,
        )  # fmt: skip
        log(f"installed in {time.perf_counter() - started:.0f} s")
    return module


def _installed_client(python: Path) -> str | None:
    """The UnleashClient version in the venv of `python`; None when there is none."""
    if not python.exists():
        return None
    script = f"import importlib.metadata as m; print(m.version({CLIENT_PACKAGE!r}))"
    found = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=False)
    return found.stdout.strip() or None


def ensure_client(root: Path = BENCH_DIR) -> Path:
    """An interpreter with the pinned UnleashClient: this one when the project's lock has it
    (a test dependency since the flags work), else root/unleash-venv, made if need be."""
    if _installed_client(Path(sys.executable)) == CLIENT_VERSION:
        return Path(sys.executable)
    venv = root / "unleash-venv"
    python = venv / "bin" / "python"
    if _installed_client(python) != CLIENT_VERSION:
        requirement = f"{CLIENT_PACKAGE}=={CLIENT_VERSION}"
        log(f"installing {requirement} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", requirement]
        subprocess.run(pip, check=True, stdout=sys.stderr)
    return python


def _create_database(sqlalchemy_url: str) -> tuple[str, int]:
    """Create Unleash's role and database on the server; returns its (host, port)."""
    url = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_ROLE}'")
        conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_ROLE}")
        info = conn.info
        return info.host, info.port


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_WAIT_S
    while True:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"unleash-server exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"unleash-server not healthy at {base} within {START_WAIT_S} s")
        time.sleep(0.5)


def _admin(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> None:
    response = client.post(f"/api/admin/projects/{PROJECT}/features{path}", json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"admin API {path or '/'}: {response.status_code} {response.text}")


def _toggle_path(on: bool) -> str:
    """The admin API path that switches the bench flag on or off in the environment."""
    return f"/{FLAG}/environments/{ENVIRONMENT}/{'on' if on else 'off'}"


@contextlib.contextmanager
def running_unleash(root: Path = BENCH_DIR) -> Iterator[UnleashPeer]:
    """Install if needed, start PostgreSQL and unleash-server, create the flag (still off)."""
    module = ensure_server(root)
    python = ensure_client(root)
    with (
        tempfile.TemporaryDirectory(prefix="opsmedic-bench-unleash-") as work,
        running_postgres() as sqlalchemy_url,
    ):
        workdir = Path(work)
        db_host, db_port = _create_database(sqlalchemy_url)
        port = free_port()
        script, log_path = workdir / "start.js", workdir / "unleash.log"
        script.write_text(START_SCRIPT)
        env = {
            **os.environ,
            "NODE_PATH": str(module.parent), "BENCH_HOST": HOST, "BENCH_PORT": str(port),
            "BENCH_DB_HOST": db_host, "BENCH_DB_PORT": str(db_port),
            "BENCH_DB_USER": DB_ROLE, "BENCH_DB_NAME": DB_NAME,
            "INIT_ADMIN_API_TOKENS": ADMIN_TOKEN, "INIT_CLIENT_API_TOKENS": CLIENT_TOKEN,
            "SEND_TELEMETRY": "false", "CHECK_VERSION": "false",
        }  # fmt: skip
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(["node", str(script)], stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=workdir)  # fmt: skip
        base = f"http://{HOST}:{port}"
        try:
            started = time.perf_counter()
            _wait_healthy(base, proc, log_path)
            log(f"unleash-server {SERVER_VERSION} up in {time.perf_counter() - started:.0f} s")
            with httpx.Client(base_url=base, headers={"Authorization": ADMIN_TOKEN}) as admin:
                _admin(admin, "", {"name": FLAG})
            yield UnleashPeer(f"{base}/api", f"unleash-server {SERVER_VERSION}", python, workdir)
        finally:
            stop_server(proc)


Seen = tuple[int, str, float]  # reader, what it printed ("ready" or "0"/"1"), monotonic time


def _follow(index: int, proc: subprocess.Popen[str], seen: queue.Queue[Seen]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        what, at = line.split()
        seen.put((index, what, float(at)))


def _all_seen(seen: queue.Queue[Seen], readers: int, want: str, wait_s: float) -> list[float]:
    """What every reader reported with `want` (a time or, for "ready", a refresh interval)."""
    got: dict[int, float] = {}
    deadline = time.monotonic() + wait_s
    while len(got) < readers:
        left = deadline - time.monotonic()
        try:
            index, what, at = seen.get(timeout=max(left, 0.001))
        except queue.Empty:
            raise TimeoutError(f"{want!r} seen by {len(got)} of {readers} readers "
                               f"in {wait_s:.0f} s") from None  # fmt: skip
        if what != want:
            raise RuntimeError(f"reader {index} printed {what!r} while waiting for {want!r}")
        got[index] = at
    return list(got.values())


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50": round(percentile(ms, 50), 1), "p99": round(percentile(ms, 99), 1),
            "max": round(max(ms), 1)}  # fmt: skip


def _readers(peer: UnleashPeer, readers: int, refresh_s: int | None) -> list[subprocess.Popen[str]]:
    refresh = "default" if refresh_s is None else str(refresh_s)
    procs = []
    for index in range(readers):
        cache = tempfile.mkdtemp(prefix=f"reader-{index}-", dir=peer.workdir)
        argv = [str(peer.client_python), str(HERE / "_unleash_reader.py"), peer.url,
                CLIENT_TOKEN, FLAG, refresh, cache, f"bench-reader-{index}"]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True))  # fmt: skip
    return procs


def _stop_readers(procs: list[subprocess.Popen[str]]) -> None:
    """Close every reader's stdin (its signal to stop), then wait for it, bounded."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    reap(procs, FLIP_MARGIN_S)


def _etag(api: httpx.Client) -> str:
    """The ETag the client API answers with now: what a polling SDK holds between polls."""
    return api.get("/api/client/features").raise_for_status().headers["etag"]


def _server_shows(api: httpx.Client, etag: str, on: bool, deadline: float) -> float:
    """When the client API first answers a poll made with `etag` by serving the flag `on`
    (monotonic time; polled every 5 ms). Until the server's revision id moves on, which
    it checks once a second, it answers such a poll 304 even when the data has changed."""
    while time.monotonic() < deadline:
        response = api.get("/api/client/features", headers={"If-None-Match": etag})
        if response.status_code == 200:
            etag = response.headers["etag"]
            features = response.json()["features"]
            if any(f["name"] == FLAG and f["enabled"] == on for f in features):
                return time.monotonic()
        elif response.status_code != 304:
            response.raise_for_status()
        time.sleep(0.005)
    raise TimeoutError(f"the client API did not serve {FLAG} {'on' if on else 'off'} in time")


def measure(
    peer: UnleashPeer, *, flips: int = 10, refresh_s: int | None = None, readers: int = 4
) -> dict[str, Any]:
    """Flip the flag `flips` times while `readers` UnleashClient processes evaluate it;
    `refresh_s` None leaves the client at its own default. Figures in milliseconds."""
    base = peer.url.removesuffix("/api")
    samples: list[float] = []
    served: list[float] = []  # until the client API answers a poll with the new value
    rng = random.Random(15)
    with (
        httpx.Client(base_url=base, headers={"Authorization": ADMIN_TOKEN}) as admin,
        httpx.Client(base_url=base, headers={"Authorization": CLIENT_TOKEN}) as api,
    ):
        # Readers start on an enabled flag (see the reader); the first enabling also gives it
        # a 100 % rollout strategy, which Unleash adds to an environment that has none.
        _admin(admin, _toggle_path(True))
        procs = _readers(peer, readers, refresh_s)
        seen: queue.Queue[Seen] = queue.Queue()
        for index, proc in enumerate(procs):
            threading.Thread(target=_follow, args=(index, proc, seen), daemon=True).start()
        try:
            intervals = set(_all_seen(seen, readers, "ready", READY_WAIT_S))
            if len(intervals) != 1:
                raise RuntimeError(f"readers disagree on their refresh interval: {intervals}")
            interval = intervals.pop()
            label = "its default" if refresh_s is None else "set by --refresh-s"
            log(f"{readers} UnleashClient readers ready, refresh {interval:g} s ({label}); "
                f"{flips} flips")  # fmt: skip
            for n in range(1, flips + 1):
                # A random phase against the readers' poll timers, which the last flip's
                # wait has just lined up with.
                time.sleep(rng.uniform(0, interval))
                on = n % 2 == 0  # the flag starts enabled
                etag = _etag(api)
                start = time.monotonic()
                _admin(admin, _toggle_path(on))
                deadline = start + 2 * interval + FLIP_MARGIN_S
                # The readers stamp what they see themselves, so this poll delays no sample.
                served.append(_server_shows(api, etag, on, deadline) - start)
                seen_at = _all_seen(seen, readers, str(int(on)), deadline - time.monotonic())
                samples.append(max(seen_at) - start)
                log(f"flip {n}/{flips}: {samples[-1] * 1000:.0f} ms "
                    f"(served after {served[-1] * 1000:.0f} ms)")  # fmt: skip
        finally:
            _stop_readers(procs)
    return {
        "unleash_ms": _summary(samples),
        "server_ms": _summary(served),
        "refresh_s": interval,
        "refresh_default": refresh_s is None,
        "flips": flips,
        "readers": readers,
        "server": peer.server,
        "client": f"{CLIENT_PACKAGE} {CLIENT_VERSION}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=10,
                        help="toggles measured (default 10: at the default 15 s refresh each "
                             "takes up to ≈20 s)")  # fmt: skip
    parser.add_argument(
        "--refresh-s",
        type=int,
        default=None,
        help="the readers' refresh interval (default: UnleashClient's own)",
    )
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()
    if args.flips < 1 or args.readers < 1 or (args.refresh_s is not None and args.refresh_s < 1):
        parser.error("--flips, --readers and --refresh-s must be at least 1")
    with running_unleash() as peer:
        result = measure(peer, flips=args.flips, refresh_s=args.refresh_s, readers=args.readers)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
