"""The rolling strategy's pure parts: checks sent to an instance, pooled traffic, the batches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opsmedic.config.rolling import RollingConfig
from opsmedic.config.services import VerifyCheck
from opsmedic.releases.access_log import BackendStats
from opsmedic.releases.rolling import Fleet, Rollout
from opsmedic.releases.rolling_batch import pooled, retarget

ROUTER = {"nginx": {"upstream": "api", "include": "up.conf", "access_log": "a.log",
                    "prefix": ".", "conf": "n.conf", "pid_file": "n.pid"}}  # fmt: skip
FIVE = [f"127.0.0.1:800{n}" for n in range(1, 6)]


def _rolling(**settings: object) -> RollingConfig:
    found = {"router": ROUTER, "instances": FIVE, "analysis": {"on_no_data": "fail"}} | settings
    return RollingConfig.model_validate(found)


def test_an_http_check_is_sent_to_the_instance_and_named_after_it() -> None:
    check = VerifyCheck.model_validate({
        "name": "home", "on_no_data": "fail", "min_samples": 4,
        "http": {"url": "http://shop.example:8080/health?deep=1", "expect_status": [204]},
    })  # fmt: skip
    found = retarget(check, "[::1]:9001")
    assert found is not None
    assert found.name == "home@[::1]:9001"
    assert found.http is not None
    assert found.http.url == "http://[::1]:9001/health?deep=1"
    assert (found.http.expect_status, found.min_samples) == ([204], 4)
    assert check.http is not None and check.http.url.startswith("http://shop.example:8080/")


def test_a_prometheus_check_is_not_sent_to_an_instance() -> None:
    check = VerifyCheck.model_validate({
        "name": "errors", "on_no_data": "hold",
        "prometheus": {"url": "http://127.0.0.1:9090", "query": "up", "max": 1},
    })  # fmt: skip
    assert retarget(check, "127.0.0.1:8001") is None


def test_pooled_traffic_keeps_every_attempt_of_the_named_backends() -> None:
    a = BackendStats(2, 1, [0.1], [1.0, 2.0], [True, False])
    b = BackendStats(1, 0, [0.2], [3.0], [False])
    found = pooled({"a": a, "b": b, "c": BackendStats(5, 5)}, ["a", "b", "missing"])
    assert (found.requests, found.errors, found.latencies) == (3, 1, [0.1, 0.2])
    assert (found.times, found.failed) == ([1.0, 2.0, 3.0], [True, False, False])
    assert a.requests == 2 and a.latencies == [0.1]  # the window's own stats are untouched


@pytest.mark.parametrize(
    ("batch", "expected"),
    [(1, [[i] for i in FIVE]), (2, [FIVE[:2], FIVE[2:4], FIVE[4:]]), (4, [FIVE[:4], FIVE[4:]])],
)
def test_instances_are_replaced_in_batches_in_their_order(
    batch: int, expected: list[list[str]]
) -> None:
    config = _rolling(batch=batch)
    rollout = Rollout("api", config, None, Fleet(), None, [], {}, [], 1.0, print)  # type: ignore[arg-type]
    assert rollout.batches() == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch": 5}, "batch 5: at most 4 of the 5 instances"),
        ({"batch": 0}, "greater than or equal to 1"),
        ({"instances": ["127.0.0.1:8001"]}, "at least 2 items"),
        ({"instances": ["127.0.0.1:8001", "127.0.0.1:8001"]}, "listed twice"),
        ({"instances": ["127.0.0.1:8001", "127.0.0.1:0"]}, "'127.0.0.1:0' is not host:port"),
        ({"version_path": "/v ersion"}, "String should match pattern"),
        ({"analysis": {"on_no_data": "fail", "max_error_ratio": -0.1}}, "greater than or equal"),
        ({"analysis": {}}, "on_no_data"),
    ],
)
def test_bad_rolling_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _rolling(**settings)
