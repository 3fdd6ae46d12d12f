"""The running evaluation over a real store: statuses, and slo_burn events as alerts start and
stop; the honest edges: no data, gaps, a clock that jumps."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from opsmedic.config.slos import SloConfig
from opsmedic.model import OWN_SOURCE, Status
from opsmedic.slo.evaluator import BUDGET_EVERY_S, Evaluator
from opsmedic.slo.status import window_of
from opsmedic.slo.watch import FLUSH_EVERY_S, StatusReader, statuses
from opsmedic.store import Store
from store_fixtures import T0

M = int(T0 // 60)


def slo(**more: Any) -> SloConfig:
    data = {"name": "api", "service": "shop", "objective": 99.9,
            "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}, **more}  # fmt: skip
    return SloConfig.model_validate(data)


def healthy(store: Store, minutes: range, per_minute: int = 100) -> None:
    store.slo_samples.add({("api", m): [per_minute, per_minute, 0] for m in minutes})


def test_an_slo_without_samples_says_no_data_never_100_percent(store: Store) -> None:
    (found,) = statuses([slo()], store, T0)
    assert found.state == "no data"
    shown = found.as_dict()
    assert shown["budget_remaining"] is None and shown["coverage"] is None
    assert set(shown["burn_rates"].values()) == {None}
    assert shown["firing"] == []


def test_a_fast_burn_pages_once_then_resolves(store: Store) -> None:
    healthy(store, range(M - 360, M - 4))
    # The last five minutes: 20 % errors, a 200x burn; over the hour 100 bad of 6000, a
    # 16.7x burn; over 6 hours 100 of 36,100, 2.8x: only the fast page (and the ticket).
    store.slo_samples.add({("api", m): [80, 100, 0] for m in range(M - 4, M + 1)})
    evaluator = Evaluator([slo()], store.slo_samples)
    evaluator.refresh(T0)
    events = evaluator.evaluate(T0)
    pages = [e for e in events if e.severity == "page"]
    assert [e.labels for e in pages] == [{"slo": "api", "service": "shop", "window": "1h"}]
    (page,) = pages
    assert (page.source, page.kind, page.resource, page.status) == (
        OWN_SOURCE, "slo_burn", "api", Status.FIRING)  # fmt: skip
    assert page.value == 100 / 6000 / 0.001  # the long window's burn: 16.67x
    assert page.payload["short_window"] == "5m"
    assert evaluator.evaluate(T0) == []  # still burning: nothing new
    # The errors stop: the next minutes are healthy, the 5-minute window recovers.
    later = T0 + 6 * 60
    healthy(store, range(M + 1, M + 7))
    evaluator.refresh(later)
    (resolved,) = [e for e in evaluator.evaluate(later) if e.severity == "page"]
    assert resolved.status is Status.RESOLVED and resolved.labels["window"] == "1h"


def test_samples_stored_late_are_read_by_the_next_evaluation(store: Store) -> None:
    evaluator = Evaluator([slo(min_requests=1)], store.slo_samples)
    evaluator.refresh(T0)
    assert evaluator.evaluate(T0) == []
    # Another worker stores the last ten minutes late: they count at the next refresh.
    store.slo_samples.add({("api", m): [0, 10, 0] for m in range(M - 9, M + 1)})
    evaluator.refresh(T0 + 30)
    severities = sorted(e.severity for e in evaluator.evaluate(T0 + 30))
    assert severities == ["page", "page", "ticket"]


def test_budget_sums_are_read_again_when_due(store: Store) -> None:
    evaluator = Evaluator([slo()], store.slo_samples)
    healthy(store, range(M - 10, M))
    evaluator.refresh(T0)
    evaluator.evaluate(T0)
    assert evaluator.statuses["api"].counts.total == 1000
    healthy(store, range(M, M + 1))
    evaluator.refresh(T0 + 1)
    evaluator.evaluate(T0 + 1)
    assert evaluator.statuses["api"].counts.total == 1000  # not yet due
    evaluator.refresh(T0 + BUDGET_EVERY_S)
    evaluator.evaluate(T0 + BUDGET_EVERY_S)
    assert evaluator.statuses["api"].counts.total == 1100


def test_a_gap_in_probing_shows_in_coverage_and_empty_slices(store: Store) -> None:
    sliced = slo(budgeting="timeslices", timeslices={"slice": "1m", "empty": "bad"})
    # Measured for the last 100 minutes, with samples in only 60 of them.
    healthy(store, range(M - 99, M - 39))
    (found,) = statuses([sliced], store, T0)
    assert found.coverage == 60 / 100
    assert found.slices is not None
    # The minute being filled now is not empty yet: 39 empty slices, each counted bad.
    assert (found.slices.with_data, found.slices.empty) == (60, 39)
    assert found.budget_left == 1 - Fraction(39) / Fraction(432, 10)
    skipped = slo(budgeting="timeslices", timeslices={"slice": "1m", "empty": "skip"})
    (found,) = statuses([skipped], store, T0)
    assert found.budget_left == 1


def test_samples_ahead_of_a_clock_that_jumped_back_are_shown_not_counted(store: Store) -> None:
    healthy(store, range(M - 10, M + 1))
    store.slo_samples.add({("api", M + 60): [0, 50, 0]})  # written before the clock went back
    (found,) = statuses([slo()], store, T0)
    assert found.ahead == 50
    assert found.counts.total == 1100 and found.state == "ok"
    # The notes `opsmedic slo` and the dashboard show beside the numbers.
    since = datetime.fromtimestamp((M - 10) * 60, UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert found.notes() == [f"measured since {since} UTC",
                             "50 samples stored ahead of now (clock jumped back?)"]  # fmt: skip


def test_a_calendar_month_is_its_own_length() -> None:
    at = datetime(2024, 2, 10, 12, 0, tzinfo=UTC).timestamp()
    window = window_of(slo(window="month"), at)
    assert window.length == 29 * 1440
    assert window.first * 60 == datetime(2024, 2, 1, tzinfo=UTC).timestamp()
    december = window_of(slo(window="month"), datetime(2024, 12, 31, tzinfo=UTC).timestamp())
    assert december.length == 31 * 1440
    rolling = window_of(slo(window="28d"), at)
    assert (rolling.length, rolling.last - rolling.first + 1) == (28 * 1440, 28 * 1440)


def test_an_slo_without_alerts_shows_its_burn_and_announces_nothing(store: Store) -> None:
    store.slo_samples.add({("api", m): [0, 100, 0] for m in range(M - 59, M + 1)})
    evaluator = Evaluator([slo(alerts=False)], store.slo_samples)
    evaluator.refresh(T0)
    assert evaluator.evaluate(T0) == []
    assert evaluator.statuses["api"].state == "exhausted"
    assert [t.window for t in evaluator.statuses["api"].firing] == ["1h", "6h", "3d"]


def test_the_dashboards_reader_agrees_with_statuses_and_sums_again_after_a_flush(
    store: Store,
) -> None:
    healthy(store, range(M - 2000, M))
    reader = StatusReader([slo()], store)
    (kept,) = reader.read(T0)
    (fresh,) = statuses([slo()], store, T0)
    assert kept.as_dict() == fresh.as_dict()
    # Bad minutes in the last hour, as the watch's flushes write them: its burn rates move
    # at the next read, the budget's window sums once they are due.
    store.slo_samples.add({("api", m): [0, 100, 0] for m in range(M - 30, M - 10)})
    (soon,) = reader.read(T0 + 1)  # sums at most FLUSH_EVERY_S old: not read again yet
    assert soon.as_dict()["budget_remaining"] == kept.as_dict()["budget_remaining"]
    assert soon.as_dict()["burn_rates"]["1h"] > kept.as_dict()["burn_rates"]["1h"]
    (later,) = reader.read(T0 + FLUSH_EVERY_S)
    assert later.as_dict() == statuses([slo()], store, T0 + FLUSH_EVERY_S)[0].as_dict()
    assert later.as_dict()["budget_remaining"] < kept.as_dict()["budget_remaining"]
