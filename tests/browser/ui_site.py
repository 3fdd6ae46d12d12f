"""The browser tests' fixtures: Debian's chromium driven by Playwright (one launch per test
module), a real `opsmedic run` with data from real runs, and the artifacts directory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, sync_playwright

from opsmedic.tokens import Scope
from served import BOUND, CHROMIUM, serving, tokens

# A run in these states has not yet come to a stop (a run waiting for a human has).
UNSETTLED = ("planned", "running")
# Where this session's artifacts went, for the summary line (conftest.py).
ARTIFACTS: list[Path] = []


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots and axe reports go: $TEST_ARTIFACTS/ui-browser, or pytest's tmp."""
    # Not an OPSMEDIC_ variable: those are opsmedic's own config (an unknown one is refused).
    root = os.environ.get("TEST_ARTIFACTS")
    where = Path(root) / "ui-browser" if root else tmp_path_factory.getbasetemp() / "ui-browser"
    where.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.append(where)
    return where


def launchable(path: str) -> None:
    """Returns when a browser is at `path`; else skips, or fails in CI (CI=true), where a
    missing browser is a broken setup, not a reason to run fewer tests."""
    if os.path.exists(path):
        return
    why = f"Debian's chromium is not installed ({path}): bash scripts/test.sh installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


# Module scope, not session: the sync API keeps an event loop running while the browser is
# open, which pytest-asyncio's tests (run module by module) cannot start theirs beside.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless chromium, launched once for a module's tests."""
    launchable(CHROMIUM)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@dataclass
class Site:
    """A running `opsmedic run`: its URL, token secrets by name (alice: read and
    operate, viewer: read, alertmanager: ingest and read) and ids of what it holds."""

    url: str
    tokens: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, token: str = "alice", **body: Any) -> Any:
        """`method path` on the API as `token` (alice: an operator); its JSON answer."""
        with httpx.Client(base_url=self.url, timeout=BOUND) as api:
            reply = api.request(method, path, json=body or None,
                                headers={"Authorization": f"Bearer {self.tokens[token]}"})  # fmt: skip
        assert reply.is_success, (method, path, reply.status_code, reply.text)
        return reply.json()

    def settled(self, path: str, done: Callable[[Any], bool]) -> Any:
        """`GET path` again until `done` holds for its JSON (a run, a deployment…); that JSON."""
        deadline = time.monotonic() + BOUND
        while not done(found := self.api("GET", path)):
            assert time.monotonic() < deadline, f"{path} did not settle: {found}"
            time.sleep(0.05)
        return found

    def post_event(self, **event: Any) -> dict[str, Any]:
        """Posts `event` as an alert source does; once its runs ended or wait for a human,
        what the API said of it (`id`, `incident_id`, `run_ids`)."""
        body = {"source": "alertmanager", "status": "firing", "time": time.time(), **event}
        (accepted,) = self.api("POST", "/api/v1/events", "alertmanager", **body)["events"]
        for run_id in accepted["run_ids"]:
            self.settled(f"/api/v1/runs/{run_id}", lambda run: run["state"] not in UNSETTLED)
        return dict(accepted)

    def slo_measured(self) -> None:
        """Returns once the SLO's samples are in the store: at its next flush, every 10 s in
        `opsmedic run`. Waited for by what shows them, not by the start-up of every test."""
        self.settled("/api/v1/slos", lambda slos: slos[0]["total"] > 0)

    def wait_for_approval(self, host: str) -> str:
        """A full scratch disk on `host`: the id of the run that waits for a yes."""
        (run,) = self.post_event(kind="ScratchFull", resource="scratch", host=host,
                                 fingerprint=f"scratch-{host}",
                                 labels={"alertname": "ScratchFull"})["run_ids"]  # fmt: skip
        return str(run)

    def flag(self, key: str, **document: Any) -> str:
        """A boolean flag `key` made by an operator through the API, on, at 30 % rollout."""
        self.api("PUT", f"/api/v1/flags/{key}", rollout={"percentage": 30}, **document)
        return key

    def deploy(self, service: str, version: str) -> str:
        """`version` of `service` deployed through the API; once it ended, its id."""
        started = self.api("POST", "/api/v1/deployments", service=service, version=version)
        (done, *_) = self.settled(f"/api/v1/deployments?service={service}",
                                  lambda found: found[0]["finished_at"])  # fmt: skip
        assert done["id"] == started["id"]
        return str(started["id"])


def _rules(logs: Path) -> list[dict[str, Any]]:
    """A disk alert hunts its logs, runs a clean-up that prints, and one that fails; a full
    scratch disk is wiped once a human said yes."""
    scratch = {"source": "alertmanager", "labels.alertname": "ScratchFull"}
    when = {"source": "alertmanager", "labels.alertname": "DiskFull"}
    return [
        {"name": "hunt-disk-errors", "when": when, "queue": "investigation",
         "do": [{"loghunt": {"files": [str(logs / "*.log")], "top": 3}}]},
        {"name": "clean-tmp", "when": when,
         "do": [{"run_command": {"argv": ["sh", "-c", "echo removed 412 files, freed 1.2G"]}},
                {"noop": {}}]},
        {"name": "rotate-logs", "when": when,
         "do": [{"run_command": {"argv": ["sh", "-c", "echo logrotate: no space >&2; exit 3"]}}]},
        {"name": "wipe-scratch", "when": scratch,
         "do": [{"run_command": {"argv": ["sh", "-c", "echo 38G /scratch"]}},
                {"run_command": {"argv": ["sh", "-c", "echo wiped {{ event.host }}:/scratch"]},
                 "approve": {"timeout": "1h", "on_timeout": "skip"}}]},
    ]  # fmt: skip


def _service(root: Path) -> dict[str, Any]:
    """`shop`: releases v1 to v3 under `root`, switched by moving a symlink; v3's check after
    the switch fails, so its deployment is rolled back."""
    for version in ("v1", "v2", "v3"):
        (root / "releases" / version).mkdir(parents=True)
    switch = 'ln -sfn "releases/$1" "current.$$" && mv -T "current.$$" current'
    return {"versions": "releases", "current": "current", "bake": "0s",
            "switch": [{"run_command": {"argv": ["sh", "-c", switch, "switch", "{{ version }}"],
                                        "cwd": "."}},
                       {"run_command": {"argv": ["sh", "-c", 'test "$1" != v3', "check",
                                                 "{{ version }}"]}}]}  # fmt: skip


# The SLO over the alerts the site receives: a critical one is a bad sample (the site starts
# with one in six: 5/6 of its 20 % budget spent).
SLO = {"name": "alert-quality", "service": "orders-db", "objective": 80,
       "sli": {"events": {"total": ["source=alertmanager"], "bad": ["severity=critical"]}}}  # fmt: skip


def _log(now: float) -> str:
    def at(ago: float) -> str:
        return datetime.fromtimestamp(now - ago, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    lines = [f"{at(300 - i)} ERROR write failed: No space left on device (fd {i})\n"
             for i in range(6)]  # fmt: skip
    lines += [f"{at(200)} WARN disk 97% full on /var\n", f"{at(100)} ERROR compaction aborted\n"]
    return "".join(lines)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`opsmedic run` (SQLite, loopback) with something real on every page: a disk alert's
    incident with a log hunt, a run that succeeded with output and one that failed; a run
    waiting for approval; an SLO over the alerts; a flag; a silence; three deployments."""
    root = tmp_path_factory.mktemp("ui-browser-site")
    (root / "logs").mkdir()
    (root / "logs" / "app.log").write_text(_log(time.time()))
    (root / "rules").mkdir()
    (root / "rules" / "disk.yaml").write_text(yaml.safe_dump(_rules(root / "logs")))
    config = root / "opsmedic.yaml"
    store = f"sqlite:///{root / 'opsmedic.db'}"
    config.write_text(yaml.safe_dump({"store": store, "rules_dir": "rules",
                                      "api": {"host": "127.0.0.1", "port": 0},
                                      "services": {"shop": _service(root)}, "slos": [SLO]}))  # fmt: skip
    with serving(config, root / "opsmedic.log") as url:  # it makes the store
        made = tokens(store, {"alice": [Scope.READ, Scope.OPERATE], "viewer": [Scope.READ],
                              "alertmanager": [Scope.INGEST, Scope.READ]})  # fmt: skip
        found = Site(url, made)
        disk = found.post_event(
            kind="DiskFull", resource="db1", host="db1", fingerprint="disk-db1", severity="critical",
            labels={"alertname": "DiskFull", "service": "orders-db", "mount": "/var"})  # fmt: skip
        found.ids.update(incident=disk["incident_id"], run=disk["run_ids"][0], event=disk["id"])
        found.ids["waiting"] = found.wait_for_approval("scratch1")
        for n in range(4):  # good samples for the SLO beside the critical one
            found.post_event(kind="HighLatency", resource=f"api{n}", fingerprint=f"lat-{n}",
                             severity="warning", labels={"alertname": "HighLatency"})  # fmt: skip
        found.ids["flag"] = found.flag("new-checkout", description="the one-page checkout")
        found.api("POST", "/api/v1/silences", matchers=["host=db2", "labels.alertname=DiskFull"],
                  duration="2h", comment="replacing the disk of db2")  # fmt: skip
        for version in ("v1", "v2", "v3"):
            found.ids["deployment"] = found.deploy("shop", version)
        yield found
