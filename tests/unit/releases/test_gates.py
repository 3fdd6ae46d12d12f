"""Promotion gates against real parts: a CI status server on loopback, real commands, a real
load test, and a store lookup standing in for "passed in staging"."""

from __future__ import annotations

import http.server
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmedic.config.gates import CiGate, CommandGate, Gate, LoadGate
from opsmedic.config.services import ServiceConfig
from opsmedic.releases.gates import run_gates

if __package__:
    from ...http_receiver import serving
else:
    from http_receiver import serving

_COUNT = itertools.count()


class Ci(http.server.BaseHTTPRequestHandler):
    """/green and /red: a CI status as JSON; /broken: 503; /text: not JSON; /flaky: every
    other request a 500; /slow: 200 after 300 ms; anything else 200."""

    def do_GET(self) -> None:
        status, body = 200, b"ok"
        if self.path == "/green":
            body = b'{"run": {"conclusion": "success"}}'
        elif self.path == "/red":
            body = b'{"run": {"conclusion": "failure"}}'
        elif self.path == "/broken":
            status = 503
        elif self.path == "/flaky" and next(_COUNT) % 2:
            status = 500
        elif self.path == "/slow":
            time.sleep(0.3)
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ci() -> Iterator[str]:
    with serving(Ci) as url:
        yield url


LOAD = LoadGate(url="http://127.0.0.1:1/", requests=30, expected_rate=100, max_p95=2.0, timeout=10)


def _service(*gates: Gate, requires: list[str] | None = None) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "versions": "/tmp", "switch": [{"run_command": {"argv": ["true"]}}],
        "gates": [g.model_dump() for g in gates],
        "environments": {"staging": {}, "production": {"requires": requires or []}},
    })  # fmt: skip


async def _passed_in_staging(version: str, env: str) -> bool:
    return (version, env) == ("v1", "staging")


async def _run(*gates: Gate, version: str = "v1", requires: list[str] | None = None) -> Any:
    return await run_gates(_service(*gates, requires=requires), "production", version,
                           _passed_in_staging)  # fmt: skip


async def test_passing_gates_are_each_recorded(ci: str, tmp_path: Path) -> None:
    results, failed = await _run(
        Gate(name="ci", ci=CiGate(url=f"{ci}/green", field="run.conclusion", value="success")),
        Gate(name="tests", command=CommandGate(argv=["sh", "-c", "echo 3 passed"], cwd=tmp_path)),
        Gate(name="load", load=LOAD.model_copy(update={"url": f"{ci}/"})),
        requires=["staging"],
    )
    assert failed == ""
    assert [(r["name"], r["kind"], r["passed"]) for r in results] == [
        ("requires:staging", "requires", True), ("ci", "ci", True),
        ("tests", "command", True), ("load", "load", True),
    ]  # fmt: skip
    assert results[2]["output"] == "[stdout]\n3 passed\n"
    assert (results[3]["requests"], results[3]["rate"], results[3]["errors"]) == (30, 150.0, 0)


@pytest.mark.parametrize(
    ("path", "field", "says"),
    [
        ("/red", "run.conclusion", "run.conclusion is 'failure', not 'success'"),
        ("/broken", None, "answered 503"),
        ("/text", "run.conclusion", "no 'run.conclusion' in the JSON body: 'ok'"),
        ("/green", "run.missing", "no 'run.missing' in the JSON body"),
    ],
)
async def test_a_red_or_unreadable_ci_status_fails(
    ci: str, path: str, field: str | None, says: str
) -> None:
    gate = CiGate(url=ci + path, field=field, value="success" if field else None)
    results, failed = await _run(Gate(name="ci", ci=gate))
    assert not results[0]["passed"]
    assert says in results[0]["message"]
    assert failed.startswith("gate ci: ") and says in failed


async def test_an_unreachable_ci_fails_naming_it() -> None:
    _, failed = await _run(Gate(name="ci", ci=CiGate(url="http://127.0.0.1:1/", timeout=2)))
    assert "no answer: ConnectError" in failed


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["sh", "-c", "echo 1 failed >&2; exit 3"], "sh failed (exit code 3)"),
        (["sleep", "30"], "sleep ran over 0.5s and was killed"),
        (["no-such-test-runner"], "cannot run no-such-test-runner"),
    ],
)
async def test_a_failing_command_fails_with_its_output(argv: list[str], says: str) -> None:
    gate = CommandGate(argv=argv, timeout=0.5)
    results, failed = await _run(Gate(name="tests", command=gate))
    assert says in failed
    if argv[0] == "sh":
        assert results[0]["output"] == "[stderr]\n1 failed\n"


async def test_a_load_test_fails_on_errors_or_a_slow_p95(ci: str) -> None:
    flaky = LoadGate(url=f"{ci}/flaky", requests=20, expected_rate=100, max_p95=2.0,
                     max_error_ratio=0.1, timeout=10)  # fmt: skip
    slow = LoadGate(url=f"{ci}/slow", requests=4, expected_rate=20, max_p95=0.1, timeout=10)
    results, failed = await _run(Gate(name="flaky", load=flaky), Gate(name="slow", load=slow))
    assert [r["passed"] for r in results] == [False, False]
    assert results[0]["errors"] == 10
    assert "gate flaky: 20 requests at 150/s: error ratio 50.00% > 10.00%" in failed
    assert "gate slow: 4 requests at 30/s: p95 " in failed and ">= 100 ms" in failed


async def test_a_load_test_against_nothing_or_past_its_timeout_fails(ci: str) -> None:
    down = LoadGate(url="http://127.0.0.1:1/", requests=5, expected_rate=50, max_p95=1.0)
    hung = LoadGate(url=f"{ci}/slow", requests=3, expected_rate=20, max_p95=5.0, timeout=0.2,
                    request_timeout=5.0)  # fmt: skip
    results, failed = await _run(Gate(name="down", load=down), Gate(name="hung", load=hung))
    assert (results[0]["errors"], results[1]["errors"]) == (5, 3)
    assert "p95 none answered" in failed


async def test_a_version_that_did_not_pass_the_required_environment_is_refused() -> None:
    results, failed = await _run(version="v2", requires=["staging"])
    assert results == [{"name": "requires:staging", "kind": "requires", "passed": False,
                        "message": "v2 has not passed verification in staging"}]  # fmt: skip
    assert failed == "gate requires:staging: v2 has not passed verification in staging"
