"""The browser tests' fixtures: Debian's chromium driven by Playwright (one launch per test
module), a real `opsmedic run` with data from real runs, and the artifacts directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
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

    def post_event(self, **event: Any) -> dict[str, Any]:
        """Posts `event` as an alert source does; once its runs ended, what the API said of
        it (`id`, `incident_id`, `run_ids`)."""
        body = {"source": "alertmanager", "status": "firing", "time": time.time(), **event}
        auth = {"Authorization": f"Bearer {self.tokens['alertmanager']}"}
        with httpx.Client(base_url=self.url, timeout=BOUND) as api:
            sent = api.post("/api/v1/events", json=body, headers=auth)
            assert sent.status_code == 202, sent.text
            (accepted,) = sent.json()["events"]
            deadline = time.monotonic() + BOUND
            for run_id in accepted["run_ids"]:
                while not api.get(f"/api/v1/runs/{run_id}", headers=auth).json()["finished_at"]:
                    assert time.monotonic() < deadline, f"run {run_id} did not finish"
                    time.sleep(0.05)
        return dict(accepted)


def _rules(logs: Path) -> list[dict[str, Any]]:
    """A disk alert hunts its logs, runs a clean-up that prints, and one that fails."""
    when = {"source": "alertmanager", "labels.alertname": "DiskFull"}
    return [
        {"name": "hunt-disk-errors", "when": when, "queue": "investigation",
         "do": [{"loghunt": {"files": [str(logs / "*.log")], "top": 3}}]},
        {"name": "clean-tmp", "when": when,
         "do": [{"run_command": {"argv": ["sh", "-c", "echo removed 412 files, freed 1.2G"]}},
                {"noop": {}}]},
        {"name": "rotate-logs", "when": when,
         "do": [{"run_command": {"argv": ["sh", "-c", "echo logrotate: no space >&2; exit 3"]}}]},
    ]  # fmt: skip


def _log(now: float) -> str:
    def at(ago: float) -> str:
        return datetime.fromtimestamp(now - ago, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    lines = [f"{at(300 - i)} ERROR write failed: No space left on device (fd {i})\n"
             for i in range(6)]  # fmt: skip
    lines += [f"{at(200)} WARN disk 97% full on /var\n", f"{at(100)} ERROR compaction aborted\n"]
    return "".join(lines)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`opsmedic run` (SQLite, loopback) after a real disk alert: an incident with a log
    hunt, a run that succeeded with output and one that failed."""
    root = tmp_path_factory.mktemp("ui-browser-site")
    (root / "logs").mkdir()
    (root / "logs" / "app.log").write_text(_log(time.time()))
    (root / "rules").mkdir()
    (root / "rules" / "disk.yaml").write_text(yaml.safe_dump(_rules(root / "logs")))
    config = root / "opsmedic.yaml"
    store = f"sqlite:///{root / 'opsmedic.db'}"
    config.write_text(yaml.safe_dump({"store": store, "rules_dir": "rules",
                                      "api": {"host": "127.0.0.1", "port": 0}}))  # fmt: skip
    with serving(config, root / "opsmedic.log") as url:  # it makes the store
        made = tokens(store, {"alice": [Scope.READ, Scope.OPERATE], "viewer": [Scope.READ],
                              "alertmanager": [Scope.INGEST, Scope.READ]})  # fmt: skip
        found = Site(url, made)
        disk = found.post_event(
            kind="DiskFull", resource="db1", host="db1", fingerprint="disk-db1", severity="critical",
            labels={"alertname": "DiskFull", "service": "orders-db", "mount": "/var"})  # fmt: skip
        found.ids.update(incident=disk["incident_id"], run=disk["run_ids"][0], event=disk["id"])
        yield found
