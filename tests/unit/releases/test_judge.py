"""The canary judge: Kayenta's Mann-Whitney classification, the score, NoData and early abort."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmedic.releases.judge import (
    AbortSettings,
    ErrorCounts,
    JudgeSettings,
    Metric,
    early_abort,
    judge,
    mann_whitney,
)

SAMPLES = 300  # per side: a one-minute step of a canary getting 5 requests a second


def latencies(rng: random.Random, count: int, scale: float = 1.0) -> list[float]:
    """Request latencies in seconds: log-normal around 20 ms, like a small web service."""
    return [scale * rng.lognormvariate(math.log(0.02), 0.5) for _ in range(count)]


def error_ratios(rng: random.Random, count: int, ratio: float) -> list[float]:
    """Per-second error ratios of 50 requests each."""
    return [sum(rng.random() < ratio for _ in range(50)) / 50 for _ in range(count)]


def canary_metrics(seed: int, *, slower: float = 1.0, errors: float = 0.01) -> list[Metric]:
    rng = random.Random(seed)
    return [
        Metric("latency", latencies(rng, SAMPLES, slower), latencies(rng, SAMPLES)),
        Metric("error_ratio", error_ratios(rng, SAMPLES, errors), error_ratios(rng, SAMPLES, 0.01)),
    ]


def test_identical_versions_pass_at_least_19_runs_in_20() -> None:
    verdicts = [judge(canary_metrics(seed)).verdict for seed in range(20)]
    assert verdicts.count("pass") >= 19, verdicts


@pytest.mark.parametrize("seed", range(5))
def test_a_canary_30_percent_slower_without_errors_is_high_and_fails(seed: int) -> None:
    result = judge(canary_metrics(seed, slower=1.3))
    by_name = {m.name: m for m in result.metrics}
    assert by_name["latency"].classification == "High", by_name["latency"].reason
    assert by_name["error_ratio"].classification == "Pass"
    assert (result.score, result.verdict) == (50.0, "fail")
    assert result.reason == "score 50.0 (latency High)"


def test_a_faster_canary_passes_when_only_higher_is_worse() -> None:
    rng = random.Random(7)
    faster = Metric("latency", latencies(rng, SAMPLES, 0.5), latencies(rng, SAMPLES))
    assert judge([faster]).metrics[0].classification == "Pass"
    either = Metric("latency", faster.canary, faster.stable, direction="either")
    assert judge([either]).metrics[0].classification == "Low"


def test_a_failing_critical_metric_scores_zero() -> None:
    rng = random.Random(3)
    metrics = [Metric(f"ok{i}", latencies(rng, 60), latencies(rng, 60)) for i in range(9)]
    ok = judge(metrics)
    assert ok.verdict == "pass"
    high = Metric("errors", [0.5] * 60, [0.0, 0.01] * 30, critical=True)
    vetoed = judge([*metrics, high])
    assert (vetoed.score, vetoed.verdict) == (0.0, "fail")
    assert vetoed.reason == "critical metric failed: errors"
    not_critical = judge([*metrics, Metric("errors", high.canary, high.stable)])
    assert (not_critical.score, not_critical.verdict) == (90.0, "marginal")


def test_weights_count_in_the_score() -> None:
    heavy = Metric("a", [1.0] * 50, [1.0] * 50, weight=3)
    failing = Metric("b", [2.0, 2.1] * 25, [1.0, 1.1] * 25)
    assert judge([heavy, failing]).score == 75.0


def test_too_few_samples_are_no_data_never_a_pass() -> None:
    short = Metric("latency", [0.1] * 49, [0.1] * 80)
    result = judge([short])
    assert (result.score, result.verdict, result.no_data) == (None, "nodata", ("latency",))
    assert result.metrics[0].reason == "49 canary and 80 stable samples, 50 needed on each side"
    assert judge([Metric("empty", [], [])]).verdict == "nodata"


def test_nan_samples_are_dropped_and_counted() -> None:
    metric = Metric("latency", [math.nan] * 10 + [0.1] * 45, [0.1] * 55, min_samples=50)
    result = judge([metric]).metrics[0]
    assert (result.classification, result.dropped, result.canary_count) == ("NoData", 10, 45)


def test_no_data_metrics_are_left_out_of_the_score_and_listed() -> None:
    rng = random.Random(1)
    metrics = [
        Metric("latency", latencies(rng, SAMPLES), latencies(rng, SAMPLES)),
        Metric("saturation", [], [0.5] * SAMPLES),
    ]
    result = judge(metrics)
    assert (result.score, result.verdict, result.no_data) == (100.0, "pass", ("saturation",))


def test_mann_whitney_finds_an_exact_shift() -> None:
    stable = [float(i) for i in range(100)]
    p_value, shift, lower, upper = mann_whitney([v + 30 for v in stable], stable, 0.98)
    assert shift == 30.0
    assert 20 <= lower < 30 < upper <= 40
    assert p_value < 1e-6
    p_value, shift, lower, upper = mann_whitney([v + 10 for v in stable], stable, 0.98)
    assert shift == 10.0
    assert p_value > 0.02  # 0..99 against 10..109 is not significant at 98 %
    assert lower <= 0 < upper  # and its interval (closed) says the same


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.0}, "confidence 1.0 is not in"),
        ({"tolerance": -0.1}, "tolerance -0.1 is negative"),
        ({"marginal": 96.0}, "marginal 96.0"),
        ({"max_samples": 1}, "max_samples 1 is below 2"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JudgeSettings(**kwargs)  # type: ignore[arg-type]


def test_bad_metrics_are_refused() -> None:
    with pytest.raises(ValueError, match="metric names repeat"):
        judge([Metric("a", [], []), Metric("a", [], [])])
    with pytest.raises(ValueError, match="metric a: weight and min_samples must be positive"):
        judge([Metric("a", [], [], weight=0)])
    with pytest.raises(ValueError, match=r"errors 3 not in 0\.\.requests 2"):
        ErrorCounts(2, 3)


def test_long_samples_are_thinned_not_refused() -> None:
    rng = random.Random(5)
    slow = Metric("latency", latencies(rng, 5000, 1.3), latencies(rng, 5000))
    result = judge([slow], JudgeSettings(max_samples=500)).metrics[0]
    assert (result.classification, result.canary_count) == ("High", 5000)


samples = st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), min_size=20, max_size=60)


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_swapping_canary_and_stable_mirrors_the_classification(
    a: list[float], b: list[float]
) -> None:
    forward = judge([Metric("m", a, b, direction="either", min_samples=20)])
    backward = judge([Metric("m", b, a, direction="either", min_samples=20)])
    mirror = {"High": "Low", "Low": "High", "Pass": "Pass"}
    assert mirror[forward.metrics[0].classification] == backward.metrics[0].classification
    assert forward.score is not None and 0 <= forward.score <= 100


@settings(max_examples=60, deadline=None)
@given(samples, st.floats(min_value=20, max_value=100))
def test_a_canary_shifted_far_above_every_stable_sample_is_high(
    stable: list[float], shift: float
) -> None:
    canary = [v + shift for v in stable]
    result = judge([Metric("m", canary, stable, min_samples=20)])
    assert result.metrics[0].classification == "High"
    assert result.verdict == "fail"


@settings(max_examples=60, deadline=None)
@given(samples, st.randoms(use_true_random=False))
def test_the_same_samples_in_any_order_pass(stable: list[float], rng: random.Random) -> None:
    canary = list(stable)
    rng.shuffle(canary)
    assert judge([Metric("m", canary, stable, min_samples=20)]).verdict == "pass"


def test_a_canary_failing_half_its_requests_is_aborted_within_a_few_dozen() -> None:
    rng = random.Random(11)
    canary, stable = [0, 0], [0, 0]  # requests, errors
    for sent in range(1, 200):
        side = canary if sent % 3 == 0 else stable  # the seed's 33 % canary
        side[0] += 1
        side[1] += side is canary and rng.random() < 0.5
        decision = early_abort(ErrorCounts(*canary), ErrorCounts(*stable))
        if decision.abort:
            break
    assert decision.abort, decision.reason
    assert sent <= 48, sent
    assert decision.reason.startswith(f"canary {canary[1]}/{canary[0]} errors, stable 0/")


@pytest.mark.parametrize(
    ("canary", "stable", "reason"),
    [
        (ErrorCounts(4, 4), ErrorCounts(100, 0), "4 errors in 4 canary requests: too few"),
        (ErrorCounts(5, 4), ErrorCounts(10, 0), "not clearly worse"),
        (ErrorCounts(100, 2), ErrorCounts(200, 0), "2 errors in 100 canary requests: too few"),
        (ErrorCounts(100, 10), ErrorCounts(200, 20), "exceeds stable's by 0.000"),
        (ErrorCounts(30, 6), ErrorCounts(0, 0), "no stable requests in the same span"),
        (ErrorCounts(20, 4), ErrorCounts(40, 2), "not clearly worse"),
    ],
)
def test_no_early_abort_without_clear_evidence(
    canary: ErrorCounts, stable: ErrorCounts, reason: str
) -> None:
    decision = early_abort(canary, stable)
    assert not decision.abort
    assert reason in decision.reason


def test_a_canary_failing_its_first_5_requests_while_stable_is_clean_is_aborted() -> None:
    """Five of five against none of ten: p = 1/3003 (Fisher), below 1 - 99.9 %."""
    decision = early_abort(ErrorCounts(5, 5), ErrorCounts(10, 0))
    assert decision.abort, decision.reason
    assert decision.p_value == pytest.approx(1 / 3003)


def test_a_canary_answering_500_to_everything_is_aborted_after_15_requests_in_all() -> None:
    canary, stable = [0, 0], [0, 0]  # requests, errors
    for sent in range(1, 100):
        side = canary if sent % 3 == 0 else stable  # the seed's 33 % canary
        side[0] += 1
        side[1] += side is canary
        if early_abort(ErrorCounts(*canary), ErrorCounts(*stable)).abort:
            break
    assert (sent, canary) == (15, [5, 5])


def test_early_abort_settings_are_honoured() -> None:
    counts = ErrorCounts(20, 4), ErrorCounts(40, 0)
    assert not early_abort(*counts).abort  # p ≈ 0.01, not at 99.9 %
    assert early_abort(*counts, AbortSettings(confidence=0.95)).abort


def test_load_stats_imports_scipy_before_any_decision_needs_it() -> None:
    """A canary calls it before moving traffic: the first early abort must not pay ≈0.5 s of
    import while the broken canary serves (bench/rollback.py). A fresh interpreter, since this
    one imported scipy already."""
    code = (
        "import sys\n"
        "from opsmedic.releases import judge\n"
        "assert 'scipy.stats' not in sys.modules, 'imported with the module'\n"
        "judge.load_stats()\n"
        "assert 'scipy.stats' in sys.modules, 'not imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
