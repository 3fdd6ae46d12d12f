"""Parameters of the built-in probes: what is accepted, what is refused and how it reads."""

from __future__ import annotations

from typing import Any

import pytest

from opsmedic.probes import validate_probe_params
from opsmedic.probes.command import PROBE as COMMAND_PROBE
from opsmedic.probes.command import Params as CommandParams
from opsmedic.probes.command import parse_stdout
from opsmedic.probes.http import PROBE as HTTP_PROBE
from opsmedic.probes.http import Params as HttpParams


def http_problems(params: dict[str, Any]) -> dict[str, str]:
    return dict(validate_probe_params(HTTP_PROBE, params))


def command_problems(params: dict[str, Any]) -> dict[str, str]:
    return dict(validate_probe_params(COMMAND_PROBE, params))


def test_http_defaults() -> None:
    p = HttpParams.model_validate({"url": "http://127.0.0.1:8080/health"})
    assert p.method == "GET"
    assert p.expect_status is None  # any 2xx
    assert p.verify_tls is True
    assert p.follow_redirects is False
    assert p.max_latency is None


def test_http_accepts_durations_and_lowercase_methods() -> None:
    p = HttpParams.model_validate(
        {"url": "https://example.test/", "method": "head", "max_latency": "250ms"}
    )
    assert p.method == "HEAD"
    assert p.max_latency == 0.25


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "url", "Field required"),
        ({"url": "ftp://host/file"}, "url", "http:// or https://"),
        ({"url": "not a url"}, "url", "http:// or https://"),
        ({"url": "http://h/", "expect_status": [200, 999]}, "expect_status", "999"),
        ({"url": "http://h/", "expect_status": []}, "expect_status", "at least 1"),
        ({"url": "http://h/", "body_match": "(unclosed"}, "body_match", "invalid regex"),
        ({"url": "http://h/", "method": "FETCH"}, "method", "GET"),
        ({"url": "http://h/", "max_latency": "soon"}, "max_latency", "not a duration"),
        ({"url": "http://h/", "verify": False}, "verify", "did you mean verify_tls?"),
    ],
)
def test_http_refuses(params: dict[str, Any], field: str, fragment: str) -> None:
    problems = http_problems(params)
    assert field in problems
    assert fragment in problems[field]


def test_command_defaults() -> None:
    p = CommandParams.model_validate({"argv": ["true"]})
    assert p.ok_exit_codes == [0]
    assert p.value == "stdout"
    assert p.cwd is None
    assert p.env == {}


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "argv", "Field required"),
        ({"argv": []}, "argv", "at least 1"),
        ({"argv": [""]}, "argv", "must not be empty"),
        ({"argv": "df -h"}, "argv", "list"),
        ({"argv": ["x"], "ok_exit_codes": []}, "ok_exit_codes", "at least 1"),
        ({"argv": ["x"], "value": "stderr"}, "value", "stdout"),
        ({"argv": ["x"], "shell": True}, "shell", "unknown key"),
    ],
)
def test_command_refuses(params: dict[str, Any], field: str, fragment: str) -> None:
    problems = command_problems(params)
    assert field in problems
    assert fragment in problems[field]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"42\n", 42.0),
        (b"  -1.5  ", -1.5),
        (b"3e6", 3e6),
        (b".5", 0.5),
        (b"85%", "85%"),
        (b"ok\n", "ok"),
        (b"1 2", "1 2"),
        (b"nan", "nan"),
        (b"1e999", "1e999"),  # not finite: kept as text rather than stored as inf
        (b"1_000", "1_000"),  # Python's float() would take it; a shell user would not mean it
        (b"", ""),
        (b"caf\xc3\xa9 \xff", "café \ufffd"),
    ],
)
def test_parse_stdout(raw: bytes, expected: float | str) -> None:
    assert parse_stdout(raw, truncated=False) == expected


def test_truncated_stdout_is_never_a_number() -> None:
    assert parse_stdout(b"1234", truncated=True) == "1234"
