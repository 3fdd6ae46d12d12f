"""Burn rates and budgets, exactly: the SRE Workbook's tiers at their thresholds."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmedic.slo.burn import (
    TIERS,
    WINDOWS,
    Counts,
    SliceCounts,
    burn_rate,
    exact,
    fires,
    minutes_label,
    occurrences_left,
    slices_left,
)  # fmt: skip

T999 = exact(99.9) / 100


def test_objectives_are_the_decimals_written() -> None:
    assert Fraction(999, 1000) == T999
    assert 1 - exact(99.997) / 100 == Fraction(3, 100_000)


def test_the_workbook_tiers_and_their_windows() -> None:
    assert [(t.severity, t.burn, t.long_min, t.short_min) for t in TIERS] == [
        ("page", Fraction(72, 5), 60, 5), ("page", 6, 360, 30), ("ticket", 1, 4320, 360)]  # fmt: skip
    assert all(t.short_min * 12 == t.long_min for t in TIERS)
    assert [minutes_label(m) for m in WINDOWS] == ["5m", "30m", "1h", "6h", "3d"]
    # The budget share each tier spends before it fires, over a 30-day window: 2 %, 5 %, 10 %.
    assert [t.burn * t.long_min / (30 * 1440) for t in TIERS] == [
        Fraction(1, 50), Fraction(1, 20), Fraction(1, 10)]  # fmt: skip


def test_burn_rate_is_the_error_ratio_over_the_allowed_one() -> None:
    assert burn_rate(Counts(good=9856, total=10_000), T999) == Fraction(72, 5)  # 14.4
    assert burn_rate(Counts(good=10_000, total=10_000), T999) == 0
    assert burn_rate(Counts(), T999) is None  # no data is not a zero burn


def test_a_page_fires_at_exactly_14_4_and_not_below() -> None:
    page = TIERS[0]
    at = Counts(good=100_000 - 1440, total=100_000)  # 1.44 % errors at 99.9 %: 14.4x
    below = Counts(good=100_000 - 1439, total=100_000)
    assert fires(page, at, at, T999, min_requests=10)
    assert not fires(page, below, at, T999, min_requests=10)
    assert not fires(page, at, below, T999, min_requests=10)  # the short window must agree
    assert not fires(page, at, Counts(), T999, min_requests=10)  # and have samples


def test_too_few_samples_never_page() -> None:
    one_bad = Counts(good=8, total=9)  # 11 % errors: a 111x burn, from nine requests
    assert not fires(TIERS[0], one_bad, one_bad, T999, min_requests=10)
    assert fires(TIERS[0], one_bad, one_bad, T999, min_requests=9)


def test_budget_left_by_occurrences() -> None:
    assert occurrences_left(Counts(good=999_500, total=1_000_000), T999) == Fraction(1, 2)
    assert occurrences_left(Counts(good=998_000, total=1_000_000), T999) == -1  # overspent
    assert occurrences_left(Counts(), T999) is None


@pytest.mark.parametrize(
    ("policy", "left"),
    [("skip", 1 - 10 / (Fraction(1, 1000) * (43200 - 100))),  # 331/431: out of the count
     ("good", 1 - 10 / (Fraction(1, 1000) * 43200)),
     ("bad", 1 - (10 + 100) / (Fraction(1, 1000) * 43200))],
)  # fmt: skip
def test_budget_left_by_time_slices_counts_empty_ones_by_policy(
    policy: str, left: Fraction
) -> None:
    slices = SliceCounts(with_data=1000, bad=10, empty=100, in_window=43200)
    assert slices_left(slices, T999, policy) == left


def test_time_slices_without_data_are_no_data_unless_empty_is_bad() -> None:
    nothing = SliceCounts(with_data=0, bad=0, empty=5, in_window=43200)
    assert slices_left(nothing, T999, "skip") is None
    assert slices_left(nothing, T999, "good") is None
    assert slices_left(nothing, T999, "bad") == 1 - 5 / (Fraction(1, 1000) * 43200)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_budget_left_is_one_minus_the_burn(good: int, extra: int) -> None:
    counts = Counts(good=good, total=good + extra)
    rate = burn_rate(counts, T999)
    assert rate is not None and occurrences_left(counts, T999) == 1 - rate
