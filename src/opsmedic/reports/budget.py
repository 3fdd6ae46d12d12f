"""The SLO budget an incident consumed: the post-mortem's Impact lines, each citing the sample
minutes it summed, and the SLOs' burn-down charts (reports.postmortem.BudgetHook)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

from opsmedic.lifecycle import milestones
from opsmedic.model import BudgetUse
from opsmedic.reports.charts import over_time
from opsmedic.reports.markdown import Citations, esc, when
from opsmedic.reports.postmortem import affected
from opsmedic.store.report_rows import Story

# slo/budget_use.py's budget_uses, with the SLOs and the store bound: (the services and
# resources an incident names, from, to) → the budget each SLO of them spent.
Measure = Callable[[Collection[str], float, float], Sequence[BudgetUse]]
# slo/budget_use.py's use_burndown, bound likewise: the (time, budget left) series of the
# period a use was measured against; read only for charts (a month of minutes to sum).
Series = Callable[[BudgetUse], Sequence[tuple[float, float]]]
_LEAD = "- SLO budget consumed"


def minute(m: int) -> str:
    """An epoch minute as a citation names it (its start, UTC)."""
    return datetime.fromtimestamp(m * 60, UTC).strftime("%Y-%m-%d %H:%M")


def samples_key(slo: str, first: int, last: int) -> str:
    """The citation of the sample minutes first..last (both included) of `slo`."""
    return f"{slo} {minute(first)} to {minute(last)}"


class SloBudget:
    """A BudgetHook: the SLOs of the services (or resources) an incident's events name, and
    those reading a probe whose readings are among its events (`readers`: a reading's source
    and kind, its probe's type and name → those SLOs' names), measured over the incident
    (opening to resolution, or `now()` while open); `uses` keeps what the last draft showed,
    for its charts."""

    def __init__(
        self, measure: Measure, series: Series, now: Callable[[], float],
        readers: Mapping[tuple[str, str], Sequence[str]] | None = None,
    ) -> None:  # fmt: skip
        self._measure, self._series, self._now = measure, series, now
        self._readers = readers or {}
        self.uses: list[BudgetUse] = []

    def __call__(self, story: Story, cites: Citations) -> list[str]:
        found = affected(story, cites)
        named = {**found["resources"], **found["services"]}
        for event in story.events.values():
            for slo in self._readers.get((event.source, event.kind), ()):
                cited = named.setdefault(slo, [])
                if (ref := cites.cite("events", event.id)) not in cited:
                    cited.append(ref)
        refs = " ".join(dict.fromkeys(r for refs in named.values() for r in refs))
        inc = cites.cite("incidents", story.incident.id)
        if not named:
            return [f"{_LEAD}: not measured: its events name no service or resource {inc}"]
        _, _, resolved = milestones(story.lines)
        end = self._now() if resolved is None else resolved.time
        self.uses = list(self._measure(set(named), story.incident.opened_at, end))
        if not self.uses:
            shown = ", ".join(esc(n) for n in sorted(named))
            return [f"{_LEAD}: not measured: no SLO is declared for {shown} {refs}"]
        return [_line(use, cites) for use in self.uses]

    def charts(self) -> dict[str, str]:
        """A burn-down per SLO shown with data, titled by the SLO's name."""
        found = {use.slo: self._series(use) for use in self.uses if use.allowed is not None}
        return {f"Error budget left: {slo}": burndown_svg(slo, points)
                for slo, points in found.items() if points}  # fmt: skip


def burndown_svg(slo: str, points: Sequence[tuple[float, float]]) -> str:
    """The budget left (percent) over an SLO's window: 100 untouched, 0 spent."""
    percent = [(t, left * 100) for t, left in points]
    # 0 to 100 %, and an overspent budget down to the next ten below: round ticks, never one
    # tick at the value itself (-66.66666667).
    lowest = min((math.floor(left / 10) * 10 for _, left in percent), default=0)
    return over_time(f"Error budget left: {slo}", "budget left", percent, y_title="percent",
                     line=True, y_range=(min(lowest, 0), 100))  # fmt: skip


def _line(use: BudgetUse, cites: Citations) -> str:
    span = cites.cite("slo_samples", samples_key(use.slo, use.first_minute, use.last_minute))
    period = cites.cite("slo_samples", samples_key(use.slo, use.window_first, use.window_last))
    what = (f"{_LEAD}, SLO {esc(use.slo)} (service {esc(use.service) or '-'}, objective "
            f"{use.objective:g} %, window {esc(use.window)})")  # fmt: skip
    minutes = f"the minutes {when(use.first_minute * 60)} to {when(use.last_minute * 60)} UTC"
    to = f"its window to {when(use.window_last * 60)} UTC"
    if use.allowed is None:
        return f"{what}: no data: no samples in {to} {period}, nor in {minutes} {span}"
    allowed = f"{_amount(use.allowed)} bad {use.unit} allowed in {to} {period}"
    if use.total == 0 and use.bad == 0:
        return (f"{what}: no samples in {minutes} {span} (a gap in its measuring, not counted "
                f"as good); {allowed}")  # fmt: skip
    share = 100 * use.bad / use.allowed
    noun = "requests" if use.unit == "requests" else "minutes (in bad time slices)"
    spent = f"{use.bad} bad of {use.total} {noun} in {minutes} {span}"
    return f"{what}: {spent}: {share:.2f} % of the period's budget, {allowed}"


def _amount(allowed: float) -> str:
    """The bad requests (or minutes) allowed, with the digits to re-derive the percent shown
    from it (six significant digits, never an exponent): 0.162, not 0.2; 303, not 303.0."""
    digits = 5 - math.floor(math.log10(abs(allowed))) if allowed else 0
    shown = f"{allowed:.{max(digits, 0)}f}"
    return shown.rstrip("0").rstrip(".") if "." in shown else shown
