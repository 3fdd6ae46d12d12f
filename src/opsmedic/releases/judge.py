"""Kayenta's canary judgement, and an early abort for a canary that is plainly failing.

Pure computation on samples the caller measured; scipy and numpy are imported inside the
functions, so importing this module (the CLI's --help does, indirectly) stays cheap.
Per metric (Kayenta's MannWhitneyClassifier): a two-sided Mann-Whitney U test of canary
against stable, and the Hodges-Lehmann shift with its confidence interval; the metric is
High (Low) when the test is significant and the interval lies wholly above (below) a band
of ± tolerance * |shift| around zero. Score = weighted Pass / (Pass + High + Low) * 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# Which change fails the metric: "increase" for latency and error ratio (higher is worse).
Direction = Literal["increase", "decrease", "either"]
Classification = Literal["Pass", "High", "Low", "NoData"]
Verdict = Literal["pass", "marginal", "fail", "nodata"]


@dataclass(frozen=True)
class Metric:
    """One measured quantity, sampled on the canary and on the stable version alike."""

    name: str
    canary: Sequence[float]
    stable: Sequence[float]
    direction: Direction = "increase"
    critical: bool = False  # failing it fails the whole judgement (score 0)
    weight: float = 1.0
    min_samples: int = 50  # per side, after NaN/inf are dropped; fewer → NoData


@dataclass(frozen=True)
class JudgeSettings:
    """Kayenta's defaults: 98 % confidence, tolerance 0.25, marginal 75, pass 95."""

    confidence: float = 0.98
    tolerance: float = 0.25
    marginal: float = 75.0
    pass_score: float = 95.0
    # Per side: the interval needs every canary-stable difference, so a side longer than
    # this is thinned evenly (every k-th sample, arrival order kept).
    max_samples: int = 2000

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence {self.confidence} is not in [0.5, 1)")
        if self.tolerance < 0:
            raise ValueError(f"tolerance {self.tolerance} is negative")
        if not 0 <= self.marginal <= self.pass_score <= 100:
            raise ValueError(f"need 0 ≤ marginal {self.marginal} ≤ pass {self.pass_score} ≤ 100")
        if self.max_samples < 2:
            raise ValueError(f"max_samples {self.max_samples} is below 2")


@dataclass(frozen=True)
class MetricResult:
    """How one metric was classified, and the numbers behind it."""

    name: str
    classification: Classification
    reason: str
    canary_count: int
    stable_count: int
    dropped: int  # NaN or infinite samples removed (Kayenta's nanStrategy "remove")
    critical: bool
    weight: float
    p_value: float | None = None
    shift: float | None = None  # Hodges-Lehmann estimate of canary - stable
    lower: float | None = None  # its confidence interval
    upper: float | None = None


@dataclass(frozen=True)
class Judgement:
    """The canary's score and verdict; metrics with no data are listed, never counted a pass."""

    score: float | None  # None when no metric had data
    verdict: Verdict
    metrics: tuple[MetricResult, ...]
    reason: str

    @property
    def no_data(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics if m.classification == "NoData")


def judge(metrics: Sequence[Metric], settings: JudgeSettings | None = None) -> Judgement:
    """Classify every metric and score the canary as Kayenta does."""
    settings = settings or JudgeSettings()
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names repeat: {names}")
    results = tuple(classify(metric, settings) for metric in metrics)
    judged = [r for r in results if r.classification != "NoData"]
    if not judged:
        return Judgement(None, "nodata", results, "no metric had enough samples to judge")
    vetoed = [r.name for r in judged if r.critical and r.classification != "Pass"]
    if vetoed:
        return Judgement(0.0, "fail", results, f"critical metric failed: {', '.join(vetoed)}")
    total = sum(r.weight for r in judged)
    score = 100 * sum(r.weight for r in judged if r.classification == "Pass") / total
    verdict: Verdict = (
        "pass"
        if score >= settings.pass_score
        else "marginal"
        if score >= settings.marginal
        else "fail"
    )
    failing = [f"{r.name} {r.classification}" for r in judged if r.classification != "Pass"]
    reason = f"score {score:.1f}" + (f" ({', '.join(failing)})" if failing else "")
    return Judgement(score, verdict, results, reason)


def classify(metric: Metric, settings: JudgeSettings) -> MetricResult:
    """Pass, High, Low or NoData for one metric."""
    if metric.weight <= 0 or metric.min_samples < 1:
        raise ValueError(f"metric {metric.name}: weight and min_samples must be positive")
    canary = [float(v) for v in metric.canary if math.isfinite(v)]
    stable = [float(v) for v in metric.stable if math.isfinite(v)]
    dropped = len(metric.canary) + len(metric.stable) - len(canary) - len(stable)

    def result(classification: Classification, reason: str, **numbers: float) -> MetricResult:
        return MetricResult(
            metric.name, classification, reason, len(canary), len(stable), dropped,
            metric.critical, metric.weight, **numbers,
        )  # fmt: skip

    if min(len(canary), len(stable)) < metric.min_samples:
        return result(
            "NoData",
            f"{len(canary)} canary and {len(stable)} stable samples, "
            f"{metric.min_samples} needed on each side",
        )
    if sorted(canary) == sorted(stable) or len(set(canary) | set(stable)) == 1:
        return result("Pass", "canary and stable samples are identical")
    limit = settings.max_samples
    p_value, shift, lower, upper = mann_whitney(
        _thin(canary, limit), _thin(stable, limit), settings.confidence
    )
    numbers = {"p_value": p_value, "shift": shift, "lower": lower, "upper": upper}
    band = settings.tolerance * abs(shift)
    significant = p_value < 1 - settings.confidence
    where = f"shift {shift:.4g} in [{lower:.4g}, {upper:.4g}], p={p_value:.3g}"
    if significant and lower > band and metric.direction in ("increase", "either"):
        return result("High", f"canary higher: {where}", **numbers)
    if significant and upper < -band and metric.direction in ("decrease", "either"):
        return result("Low", f"canary lower: {where}", **numbers)
    return result("Pass", f"no failing difference: {where}", **numbers)


def _thin(values: list[float], limit: int) -> list[float]:
    step = math.ceil(len(values) / limit)
    return values[::step]


def load_stats() -> None:
    """Import scipy.stats now (about half a second here): a canary calls it before moving
    traffic, so the first early-abort decision does not pay for the import while a broken
    canary keeps serving (bench/rollback.py measured it on the critical path)."""
    import scipy.stats  # noqa: F401


def mann_whitney(
    canary: Sequence[float], stable: Sequence[float], confidence: float
) -> tuple[float, float, float, float]:
    """Two-sided Mann-Whitney U p-value, Hodges-Lehmann shift (canary - stable) and its interval.

    The interval is the distribution-free one (Lehmann; R's wilcox.test conf.int with the
    normal approximation): the C-th smallest and largest of all pairwise differences.
    """
    import numpy as np
    from scipy import stats

    a, b = np.asarray(canary, dtype=float), np.asarray(stable, dtype=float)
    p_value = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    diffs = (a[:, None] - b[None, :]).ravel()
    n, m, count = len(a), len(b), diffs.size
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    c = math.floor(count / 2 - z * math.sqrt(count * (n + m + 1) / 12))
    mid = [(count - 1) // 2, count // 2]
    if c < 1:  # too few samples for an interval at this confidence: it is unbounded
        diffs.partition(mid)
        return p_value, float(diffs[mid].mean()), -math.inf, math.inf
    ranks = [c - 1, *mid, count - c]
    diffs.partition(ranks)
    return p_value, float(diffs[mid].mean()), float(diffs[c - 1]), float(diffs[count - c])


@dataclass(frozen=True)
class ErrorCounts:
    """Requests and failed requests of one version over the same span."""

    requests: int
    errors: int

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise ValueError(f"errors {self.errors} not in 0..requests {self.requests}")


@dataclass(frozen=True)
class AbortSettings:
    """When a canary's errors stop it at once, without waiting for the step's analysis."""

    confidence: float = 0.999  # one-sided Fisher exact test, canary error ratio > stable's
    # Canary requests seen before anything is decided. At 5 only "all 5 failed, stable clean"
    # passes the Fisher test, and a 500-for-everything canary at 33 % dies after 15 requests
    # in all instead of 30 (bench/rollback.py); a canary failing half its requests is stopped
    # no sooner (the test decides there), and false aborts do not rise (200-seed simulations).
    min_requests: int = 5
    min_errors: int = 3  # a lone failure is never "clearly worse"
    min_excess: float = 0.05  # canary ratio - stable ratio; a statistically sure 0.1 % is no fire


@dataclass(frozen=True)
class AbortDecision:
    abort: bool
    reason: str
    p_value: float | None = None


def early_abort(
    canary: ErrorCounts, stable: ErrorCounts, settings: AbortSettings | None = None
) -> AbortDecision:
    """Abort when the canary's error ratio is clearly worse than stable's.

    With no stable traffic the test cannot speak and the canary is not aborted here.
    """
    settings = settings or AbortSettings()
    if canary.requests < settings.min_requests or canary.errors < settings.min_errors:
        return AbortDecision(
            False, f"{canary.errors} errors in {canary.requests} canary requests: too few to tell"
        )
    if stable.requests == 0:
        return AbortDecision(False, "no stable requests in the same span to compare with")
    excess = canary.errors / canary.requests - stable.errors / stable.requests
    if excess < settings.min_excess:
        return AbortDecision(False, f"canary error ratio exceeds stable's by {excess:.3f}")
    from scipy import stats

    table = [
        [canary.errors, canary.requests - canary.errors],
        [stable.errors, stable.requests - stable.errors],
    ]
    p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
    counts = (
        f"canary {canary.errors}/{canary.requests} errors, stable {stable.errors}/{stable.requests}"
    )
    if p_value < 1 - settings.confidence:
        return AbortDecision(True, f"{counts}: clearly worse (p={p_value:.2g})", p_value)
    return AbortDecision(False, f"{counts}: not clearly worse (p={p_value:.2g})", p_value)
