"""One interval of a `traffic` check, read from an access log written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsmedic.config.services import TrafficCheck, VerifyCheck
from opsmedic.releases.access_log import LogFollower
from opsmedic.releases.measure import Verdict
from opsmedic.releases.traffic_check import interval_sample

A, B = "127.0.0.1:8001", "127.0.0.1:8002"


def _line(status: str, addr: str, upstream_status: str, seconds: str, at: float = 1.0) -> str:
    return f"{at:.3f}\t{status}\t{addr}\t{upstream_status}\t{seconds}\n"


def _check(log: Path, **more: Any) -> TrafficCheck:
    return TrafficCheck.model_validate({"access_log": str(log), "min_requests": 2} | more)


def _followed(tmp_path: Path) -> tuple[Path, LogFollower]:
    log = tmp_path / "access.log"
    log.write_text(_line("200", A, "200", "0.010"))  # before the verification: not counted
    return log, LogFollower(log)


def _write(log: Path, *lines: str) -> None:
    with log.open("a") as out:
        out.writelines(lines)


def test_requests_since_the_last_read_are_one_sample(tmp_path: Path) -> None:
    log, follower = _followed(tmp_path)
    _write(log, *[_line("200", A, "200", "0.020")] * 3)
    found = interval_sample(_check(log), follower)
    assert found.verdict is Verdict.GOOD
    assert found.message == "0 of 3 requests failed, p95 20 ms"
    assert interval_sample(_check(log), follower).verdict is Verdict.NO_DATA  # read once only


def test_a_retried_request_counts_against_the_backend_that_failed_it(tmp_path: Path) -> None:
    log, follower = _followed(tmp_path)
    # The client saw 200s: nginx retried each on B after A answered 500.
    _write(log, *[_line("200", f"{A}, {B}", "500, 200", "0.001, 0.002")] * 4)
    found = interval_sample(_check(log, backends=[A]), follower)
    assert found.verdict is Verdict.BAD
    assert found.message.startswith("4 of 4 requests failed")
    assert found.value == 1.0


def test_only_the_named_backends_count(tmp_path: Path) -> None:
    log, follower = _followed(tmp_path)
    _write(log, _line("502", B, "502", "0.001"), *[_line("200", A, "200", "0.001")] * 2)
    assert interval_sample(_check(log, backends=[A]), follower).verdict is Verdict.GOOD


def test_a_slow_interval_is_bad_by_its_p95(tmp_path: Path) -> None:
    log, follower = _followed(tmp_path)
    _write(log, *[_line("200", A, "200", "0.300")] * 4)
    found = interval_sample(_check(log, max_p95="200ms"), follower)
    assert found.verdict is Verdict.BAD and "max_p95 0.2s" in found.message


def test_no_answer_is_a_failed_request(tmp_path: Path) -> None:
    log, follower = _followed(tmp_path)
    _write(log, *[_line("502", A, "-", "-")] * 2)
    assert interval_sample(_check(log), follower).verdict is Verdict.BAD


def test_unreadable_lines_with_too_few_requests_are_an_error_never_a_pass(tmp_path: Path) -> None:
    log, follower = _followed(tmp_path)
    _write(log, "a line in another format\n", _line("200", A, "200", "0.001"))
    found = interval_sample(_check(log), follower)
    assert found.verdict is Verdict.ERRORED
    assert "unreadable access log lines" in found.message and "fields" in found.message


def test_a_missing_log_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "nowhere.log"
    found = interval_sample(_check(log), LogFollower(log))
    assert found.verdict is Verdict.ERRORED and "does not exist" in found.message


def test_a_check_has_exactly_one_source_and_valid_backends() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="exactly one of http, prometheus or"):
        VerifyCheck.model_validate({
            "name": "x", "on_no_data": "fail", "traffic": {"access_log": "a.log"},
            "http": {"url": "http://127.0.0.1:1/"},
        })  # fmt: skip
    for bad in ("nope", "127.0.0.1:8001\n", "127.0.0.1:\u0661\u0668\u0660\u0669\u0663"):
        # A trailing newline would reach nginx's config; Arabic-Indic digits, its port.
        with pytest.raises(pydantic.ValidationError, match="is not host:port"):
            TrafficCheck.model_validate({"access_log": "a.log", "backends": [bad]})
