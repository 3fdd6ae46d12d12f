"""The budget an SLO spent over a span (an incident's) and its burn-down over the period, from
the per-minute samples: what post-mortems and `opsmedic slo --chart` show."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from fractions import Fraction

from opsmedic.config.slos import SloConfig
from opsmedic.model import BudgetUse
from opsmedic.slo.burn import exact
from opsmedic.slo.status import SloStatus, slice_minutes, status_of, window_of
from opsmedic.store.slo_rows import SloSampleTable

# A burn-down over a month of minutes is drawn with at most this many points (one every two
# hours for 30 days: enough for a chart 800 px wide, and half the drawing time of one an
# hour); the last point is always the budget left now.
MAX_POINTS = 360
Minutes = Mapping[int, tuple[int, int]]  # minute → (good, total)


def period_status(slo: SloConfig, samples: SloSampleTable, at: float) -> SloStatus:
    """The SLO's status at `at` from the store (its budget window ending then)."""
    window = window_of(slo, at)
    ratio = slo.timeslices.good_ratio if slo.timeslices else 1.0
    sums = samples.window(slo.name, window.first, window.last, slice_minutes(slo), ratio)
    return status_of(slo, at, {}, sums)


def burndown(slo: SloConfig, samples: SloSampleTable, at: float) -> list[tuple[float, float]]:
    """(time, budget left) over the SLO's window ending at `at`, from its first sample there
    (before it nothing was measured: no point claims an untouched budget); the last point is
    the status's budget remaining. Empty without samples."""
    status = period_status(slo, samples, at)
    window = status.window
    return _series(slo, status, samples.minutes(slo.name, window.first, window.last))


def use_burndown(
    slos: Sequence[SloConfig], samples: SloSampleTable, use: BudgetUse
) -> list[tuple[float, float]]:
    """The burn-down of the period a BudgetUse was measured against (for its chart)."""
    by_name = {s.name: s for s in slos}
    return burndown(by_name[use.slo], samples, use.window_last * 60.0)


def budget_uses(
    slos: Sequence[SloConfig], samples: SloSampleTable, named: Collection[str],
    first_s: float, last_s: float,
) -> list[BudgetUse]:  # fmt: skip
    """For each SLO whose service (or name) is in `named`: the budget its samples spent from
    `first_s` to `last_s`, against its window ending at `last_s`."""
    return [_use(slo, samples, first_s, last_s) for slo in slos
            if slo.service in named or slo.name in named]  # fmt: skip


def probe_readers(
    slos: Sequence[SloConfig], probe_types: Mapping[str, str]
) -> dict[tuple[str, str], list[str]]:
    """(source, kind) of a probe's readings, i.e. its type and name → the SLOs reading it."""
    found: dict[tuple[str, str], list[str]] = {}
    for slo in slos:
        ref = slo.sli.availability or slo.sli.latency
        if ref is not None and ref.probe in probe_types:
            found.setdefault((probe_types[ref.probe], ref.probe), []).append(slo.name)
    return found


def _use(slo: SloConfig, samples: SloSampleTable, first_s: float, last_s: float) -> BudgetUse:
    status = period_status(slo, samples, last_s)
    window = status.window
    k = slice_minutes(slo)
    first, last = int(first_s // 60), int(last_s // 60)
    if slo.timeslices is not None:  # the slices the span touches, read whole
        first, last = first - first % k, last - last % k + k - 1
    span = samples.minutes(slo.name, first, last)
    allowed = _allowed(slo, status)
    if slo.timeslices is None:
        bad = sum(t - g for g, t in span.values())
        total = sum(t for _, t in span.values())
        unit = "requests"
    else:
        began = status.sums.first_minute
        verdicts = [v for _, v in _slices(slo, span, first, last, began, window.last // k)]
        bad = sum(v in ("bad", "empty bad") for v in verdicts) * k
        total = sum(v in ("good", "bad") for v in verdicts) * k
        unit = "minutes"
    return BudgetUse(slo.name, slo.service, slo.objective, slo.window, unit, first, last, bad,
                     total, window.first, window.last,
                     None if allowed is None else float(allowed))  # fmt: skip


def _allowed(slo: SloConfig, status: SloStatus) -> Fraction | None:
    """Bad requests (occurrences) or bad minutes (time slices) the period's budget allows."""
    if status.budget_left is None:
        return None
    spare = 1 - exact(slo.objective) / 100
    if status.slices is None or slo.timeslices is None:
        return spare * status.counts.total
    slices = status.slices
    counted = slices.in_window - (slices.empty if slo.timeslices.empty == "skip" else 0)
    return spare * counted * slice_minutes(slo)


def _slices(
    slo: SloConfig, minutes: Minutes, first: int, last: int, began: int | None, current: int
) -> Iterator[tuple[int, str]]:
    """Each slice index of [first, last] with its verdict: good, bad (as the store judges
    them: good < good_ratio x total), or for one without samples that ended since the SLO was
    first measured "empty good|bad|skip" (the declared policy); slices before that are left out."""
    assert slo.timeslices is not None
    k, ratio, policy = slice_minutes(slo), slo.timeslices.good_ratio, slo.timeslices.empty
    sums: dict[int, list[int]] = {}
    for minute, (g, t) in minutes.items():
        if t:
            row = sums.setdefault(minute // k, [0, 0])
            row[0] += g
            row[1] += t
    start = first // k if began is None else max(first // k, began // k)
    for index in range(start, last // k + 1):
        found = sums.get(index)
        if found is not None:
            yield index, "bad" if found[0] < ratio * found[1] else "good"
        elif began is not None and index < current:
            yield index, f"empty {policy}"


def _series(slo: SloConfig, status: SloStatus, minutes: Minutes) -> list[tuple[float, float]]:
    """The budget left after each minute (or slice) of the window, as the status counts it."""
    allowed = _allowed(slo, status)
    began = status.sums.first_minute
    if allowed is None or began is None:
        return []
    window = status.window
    steps: list[tuple[int, int]] = []  # (minute, bad so far in requests or minutes)
    spent = 0
    if slo.timeslices is None:
        for minute in range(max(window.first, began), window.last + 1):
            g, t = minutes.get(minute, (0, 0))
            spent += t - g
            steps.append((minute, spent))
    else:
        k = slice_minutes(slo)
        slices = _slices(slo, minutes, window.first, window.last, began, window.last // k)
        for index, verdict in slices:
            spent += k if verdict in ("bad", "empty bad") else 0
            steps.append((max(index * k, window.first), spent))
    # allowed > 0: the objective is below 100 % and a budget exists only with samples.
    return [(m * 60.0, float(1 - spent / allowed)) for m, spent in _thin(steps)]


def _thin(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """At most about MAX_POINTS points, evenly spaced, always the last (thinned before the
    exact arithmetic: a month of minutes in fractions would take seconds)."""
    step = max(1, -(-len(points) // MAX_POINTS))
    kept = points[step - 1 :: step]
    if points and (not kept or kept[-1] != points[-1]):
        kept.append(points[-1])
    return kept
