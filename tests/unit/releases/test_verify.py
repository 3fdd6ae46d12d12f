"""Verification's judgement: errors never pass, no data does what on_no_data says, bad samples
fail the check as soon as min_samples are in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from opsmedic.config.services import VerifyCheck
from opsmedic.releases.measure import Sample, Sampler, Verdict
from opsmedic.releases.verify import Result, verify

GOOD = Sample(Verdict.GOOD, 1.0, "ok")
BAD = Sample(Verdict.BAD, 1.0, "status 500")
ERRORED = Sample(Verdict.ERRORED, None, "query failed")
NO_DATA = Sample(Verdict.NO_DATA, None, "no series")


def _check(on_no_data: str, name: str = "c", **more: Any) -> VerifyCheck:
    return VerifyCheck.model_validate({
        "name": name, "prometheus": {"url": "http://127.0.0.1:9", "query": "up", "max": 1},
        "interval": "10ms", "min_samples": 3, "on_no_data": on_no_data, **more,
    })  # fmt: skip


def _script(samples: Iterable[Sample]) -> Sampler:
    """The samples in order, then the last one again."""
    listed = list(samples)

    async def sample(check: VerifyCheck) -> Sample:
        return listed.pop(0) if len(listed) > 1 else listed[0]

    return sample


async def _always_ours(progress: dict[str, Any]) -> bool:
    return True


async def _verify(checks: list[VerifyCheck], sampler: Sampler, bake: float = 0.1,
                  longest: float = 0.5) -> Result:  # fmt: skip
    return await verify(checks, sampler, bake=bake, longest=longest, beat=_always_ours)


@pytest.mark.parametrize("policy", ["fail", "hold", "pass"])
async def test_every_measurement_errored_fails_whatever_the_policy(policy: str) -> None:
    found = await _verify([_check(policy)], _script([ERRORED]))
    assert not found.passed
    assert "an error is never a pass" in found.reason
    assert found.checks["c"]["counts"] == {"errored": found.checks["c"]["counts"]["errored"]}


async def test_no_data_fails_with_fail() -> None:
    found = await _verify([_check("fail")], _script([NO_DATA]))
    assert not found.passed and "(on_no_data: fail)" in found.reason


async def test_no_data_passes_with_pass_and_says_so() -> None:
    found = await _verify([_check("pass")], _script([NO_DATA]))
    assert found.passed and "passed without data" in found.reason


async def test_hold_waits_for_data_and_passes_when_it_comes() -> None:
    # No data through the bake time, then good samples: held, then judged on them.
    found = await _verify([_check("hold", interval="20ms")],
                          _script([NO_DATA] * 8 + [GOOD]), bake=0.05, longest=5.0)  # fmt: skip
    assert found.passed, found.reason
    assert found.checks["c"]["counts"]["no_data"] == 8


async def test_hold_is_bounded_by_the_verify_timeout() -> None:
    found = await _verify([_check("hold")], _script([NO_DATA]), bake=0.05, longest=0.2)
    assert not found.passed and "held for data past verify_timeout" in found.reason


async def test_bad_samples_fail_at_once_and_a_tolerated_ratio_passes() -> None:
    found = await _verify([_check("fail")], _script([GOOD, BAD, GOOD]), bake=30.0, longest=60.0)
    assert not found.passed and "1 of 3 samples bad (last: status 500)" in found.reason
    tolerant = _check("fail", max_error_ratio=0.5)
    assert (await _verify([tolerant], _script([GOOD, BAD, GOOD, GOOD]))).passed


async def test_a_failing_check_fails_the_verification_even_when_others_pass() -> None:
    async def sample(check: VerifyCheck) -> Sample:
        return GOOD if check.name == "ok" else BAD

    found = await _verify([_check("fail", "ok"), _check("fail", "broken")], sample)
    assert not found.passed and found.reason.startswith("verification failed: broken:")


async def test_a_sampler_that_raises_is_an_errored_measurement() -> None:
    async def sample(check: VerifyCheck) -> Sample:
        raise RuntimeError("bug")

    found = await _verify([_check("pass")], sample)
    assert not found.passed and "errored" in found.reason


async def test_a_lost_deployment_stops_verifying() -> None:
    async def lost(progress: dict[str, Any]) -> bool:
        return False

    found = await verify([_check("fail")], _script([GOOD]), bake=5.0, longest=10.0, beat=lost)
    assert found.aborted and not found.passed
