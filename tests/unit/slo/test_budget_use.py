"""The budget an SLO spent over a span and its burn-down over the window, from a real store:
the last point is the status's budget left, time slices as the policy counts them, no data is
no series; the SVG parses and draws exactly the series."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from opsmedic.config.slos import SloConfig
from opsmedic.reports.budget import SloBudget, burndown_svg
from opsmedic.reports.html import page
from opsmedic.slo.budget_use import (
    MAX_POINTS,
    budget_uses,
    burndown,
    period_status,
    use_burndown,
)
from opsmedic.store import Store
from store_fixtures import T0

M = int(T0 // 60)


def slo(**more: Any) -> SloConfig:
    data = {"name": "api", "service": "shop", "objective": 99.0, "window": "1d",
            "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}, **more}  # fmt: skip
    return SloConfig.model_validate(data)


def test_the_burn_down_ends_at_the_budget_left_and_starts_when_measuring_did(
    store: Store,
) -> None:
    # 100 minutes healthy, then 10 minutes with 5 bad of 100 each: 50 bad of 11,000, the
    # budget allows 110: 1 - 50/110 left.
    store.slo_samples.add({("api", m): [100, 100, 0] for m in range(M - 109, M - 9)})
    store.slo_samples.add({("api", m): [95, 100, 0] for m in range(M - 9, M + 1)})
    found = slo()
    points = burndown(found, store.slo_samples, T0)
    assert points[0] == ((M - 109) * 60.0, 1.0)  # nothing drawn before the first sample
    assert points[-1] == (M * 60.0, pytest.approx(1 - 50 / 110))
    left = period_status(found, store.slo_samples, T0).as_dict()["budget_remaining"]
    assert points[-1][1] == left
    assert [t for t, _ in points] == sorted(t for t, _ in points)
    assert points[100] == ((M - 9) * 60.0, pytest.approx(1 - 5 / 110))


def test_a_month_of_minutes_is_thinned_to_at_most_max_points(store: Store) -> None:
    store.slo_samples.add({("api", m): [100, 100, 0] for m in range(M - 43_199, M + 1)})
    points = burndown(slo(window="30d"), store.slo_samples, T0)
    assert MAX_POINTS <= len(points) <= MAX_POINTS + 1
    assert points[-1] == (M * 60.0, 1.0)


def test_no_samples_is_no_series_and_no_data_in_a_post_mortem_line(store: Store) -> None:
    assert burndown(slo(), store.slo_samples, T0) == []
    (use,) = budget_uses([slo()], store.slo_samples, {"shop"}, T0 - 600, T0)
    assert (use.allowed, use.bad, use.total) == (None, 0, 0)
    assert use_burndown([slo()], store.slo_samples, use) == []


@pytest.mark.parametrize(("policy", "bad_minutes", "left"), [
    # 5-minute slices over a day: 288; 1 % allows 2.88 slices (14.4 minutes). Samples from
    # M - 59 (12 slices measured): 9 good, 1 bad, 2 empty (and the current one).
    ("skip", 5, 1 - 1 / (0.01 * 286)),
    ("bad", 15, 1 - 3 / (0.01 * 288)),
    ("good", 5, 1 - 1 / (0.01 * 288)),
])  # fmt: skip
def test_time_slices_spend_minutes_as_the_empty_policy_says(
    store: Store, policy: str, bad_minutes: int, left: float
) -> None:
    k = 5
    start = M - M % k - 60  # 12 whole slices before the current one
    bad_slice = start + 5 * k
    empty = {start + 7 * k + i for i in range(2 * k)}
    samples = {("api", m): [50 if bad_slice <= m < bad_slice + k else 100, 100, 0]
               for m in range(start, M + 1) if m not in empty}  # fmt: skip
    store.slo_samples.add(samples)
    found = slo(budgeting="timeslices",
                timeslices={"slice": "5m", "good_ratio": 0.99, "empty": policy})  # fmt: skip
    (use,) = budget_uses([found], store.slo_samples, {"api"}, start * 60.0, T0)
    assert (use.unit, use.bad, use.total) == ("minutes", bad_minutes, 11 * k)
    points = use_burndown([found], store.slo_samples, use)
    assert points[-1][1] == pytest.approx(left)
    status = period_status(found, store.slo_samples, T0).as_dict()
    assert points[-1][1] == status["budget_remaining"]


def _drawn(svg: str) -> list[tuple[str, float]]:
    """The points an SVG draws: (the time label, the value), from pygal's dot descriptions."""
    ns = {"svg": "http://www.w3.org/2000/svg"}
    root = ET.fromstring(svg)  # it parses as XML
    found = []
    for desc in root.iterfind(".//svg:g[@class='dots']/svg:desc[@class='value']", ns):
        label, _, value = (desc.text or "").rpartition(": ")
        found.append((label, float(value)))
    return found


def test_the_chart_draws_the_series_and_the_page_escapes_store_text(store: Store) -> None:
    store.slo_samples.add({("api", m): [90 if m % 7 == 0 else 100, 100, 0]
                           for m in range(M - 300, M + 1)})  # fmt: skip
    points = burndown(slo(), store.slo_samples, T0)
    svg = burndown_svg("api", points)
    drawn = _drawn(svg)
    assert len(drawn) == len(points)
    for (label, value), (t, left) in zip(drawn, points, strict=True):
        assert label == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")
        assert value == pytest.approx(left * 100, abs=1e-3)
    assert "<script" not in svg
    budget = SloBudget(partial(budget_uses, [slo()], store.slo_samples),
                       partial(use_burndown, [slo()], store.slo_samples), lambda: T0)  # fmt: skip
    budget.uses = budget_uses([slo()], store.slo_samples, {"shop"}, T0 - 600, T0)
    html = page("<b>x</b>", "- label \\<script\\>alert(1)\\</script\\>", budget.charts())
    assert html.count("<svg") == 1 and "<script" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;script&gt;" in html
    assert re.search(r"<figcaption>Error budget left: api</figcaption>", html)
