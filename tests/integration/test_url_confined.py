"""An http_request rule driven by a hostile event id, end to end: no request the rule did not write."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.executor import Executor
from opsmedic.model import Event, Run, RunState
from opsmedic.plugins import build_registry
from opsmedic.rules.loader import load_rules


class _Receiver(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def _run(tmp_path: Path, server: str, item: str) -> Run:
    (tmp_path / "rules.yaml").write_text(
        "- name: fetch\n  when: {source: x}\n  do:\n"
        f"    - http_request: {{url: '{server}/api/v1/items/{{{{ event.labels.id }}}}'}}\n"
    )
    registry = build_registry(load_entry_points=False)
    (rule,) = load_rules(tmp_path / "rules.yaml", registry)
    config = Config.model_validate({"state_dir": str(tmp_path / "state")})
    event = Event(source="x", labels={"id": item})
    run = Run(rule=rule.name, event_id=event.id, target=event.target,
              fingerprint=event.fingerprint, actions=["http_request"])  # fmt: skip
    await Executor(registry, config, SystemClock(), structlog.get_logger()).execute(
        run, rule, event
    )
    return run


@pytest.mark.parametrize(
    "item",
    ["../../../admin/delete?all=1", "../../../admin/delete", "%2e%2e/%2e%2e/%2e%2e/admin",
     "..;/..;/..;/admin", "1?all=1", "1\r\nX-Injected: 1"],
)  # fmt: skip
async def test_a_hostile_id_fails_the_run_before_any_request(
    tmp_path: Path, server: str, item: str
) -> None:
    run = await _run(tmp_path, server, item)
    assert run.state is RunState.FAILED
    (step,) = run.steps
    assert step.message.startswith("bad parameters") and "url" in step.message
    assert _Receiver.seen == []


async def test_the_same_rule_fetches_its_item(tmp_path: Path, server: str) -> None:
    run = await _run(tmp_path, server, "42")
    assert run.state is RunState.SUCCEEDED, run.message
    assert _Receiver.seen == ["/api/v1/items/42"]
