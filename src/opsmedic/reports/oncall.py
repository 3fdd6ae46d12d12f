"""The on-call summary of a window: each incident and how it ended, counts, the noisiest rules
and alerts, the remediations that failed or escalated; read from the store, runs counted in
SQL."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from opsmedic.model import Event, Incident, RunState
from opsmedic.reports.markdown import Citations, count, esc, secs, table, when
from opsmedic.store.report_rows import Ending
from opsmedic.store.run_counts import FailedRun
from opsmedic.store.store import Store

NOISIEST = 10  # rules and alerts shown as the noisiest
MAX_FAILED = 200  # failed runs listed at most (all are counted)
_FAILED = (RunState.FAILED.value, RunState.TIMED_OUT.value, RunState.INTERRUPTED.value)


@dataclass
class Oncall:
    """What `summarize` read; `markdown`, `json` and `charts` present it."""

    since: float
    until: float
    incidents: list[tuple[Incident, Ending]]
    incidents_total: int
    runs: Counter[str] = field(default_factory=Counter)  # by state
    rules: Counter[str] = field(default_factory=Counter)  # runs by rule
    rule_failures: Counter[str] = field(default_factory=Counter)
    runs_of: Counter[str] = field(default_factory=Counter)  # runs by incident id
    failed: list[FailedRun] = field(default_factory=list)
    alerts: list[tuple[Event, int]] = field(default_factory=list)
    escalations: list[Event] = field(default_factory=list)
    remediation_times: list[float] = field(default_factory=list)  # for the chart

    def ttm(self, incident: Incident, ending: Ending) -> float | None:
        return None if ending.mitigated is None else ending.mitigated.time - incident.opened_at


def summarize(store: Store, since: float, until: float) -> Oncall:
    """Read the window [since, until): its incidents (at most MAX_INCIDENTS, counted all),
    its runs (counted in SQL, never all in memory), its noisiest alerts and its escalations."""
    found, total = store.reports.incidents(since, until)
    endings = store.reports.endings([i.id for i in found])
    summary = Oncall(since, until, [(i, endings[i.id]) for i in found], total)
    counted = store.reports.window_runs(since, until, _FAILED, MAX_FAILED)
    for group in counted.states:  # in the order they first appear: the counters keep it
        summary.runs[group.state] += group.runs
        summary.rules[group.rule] += group.runs
        if group.state in _FAILED:
            summary.rule_failures[group.rule] += group.runs
    summary.runs_of.update(counted.by_incident)
    summary.failed = counted.failed
    summary.remediation_times = counted.remediation_times
    summary.alerts = store.reports.noisiest_alerts(since, until, NOISIEST)
    summary.escalations = [e for e in store.escalations(since) if e.time < until]
    return summary


def _resolution(ending: Ending) -> str:
    if ending.automatic is None:
        return "not resolved"
    return "automatic" if ending.automatic else "manual"


def markdown(summary: Oncall, charts: dict[str, str] | None = None) -> str:
    """The summary in Markdown; `charts` maps a title to the SVG file the Markdown links."""
    cites = Citations()
    n = len(summary.incidents)
    cut = f" (the first {n} of {summary.incidents_total})" if n < summary.incidents_total else ""
    out = [f"# On-call summary, {when(summary.since)} to {when(summary.until)} UTC", "",
           f"{count(summary.incidents_total, 'incident')}{cut}, "
           f"{count(sum(summary.runs.values()), 'run')} ("
           + (", ".join(f"{c} {s}" for s, c in sorted(summary.runs.items())) or "none") + "), "
           f"{count(len(summary.escalations), 'escalation')}.", "", "## Incidents", ""]  # fmt: skip
    rows = []
    for i, (incident, ending) in enumerate(summary.incidents, 1):
        ttm = summary.ttm(incident, ending)
        refs = [cites.cite("incidents", incident.id)]
        refs += [cites.cite("timeline", line.id) for line in (ending.mitigated, ending.resolved)
                 if line is not None]  # fmt: skip
        took = "-" if ttm is None else secs(ttm)
        rows.append([str(i), when(incident.opened_at), esc(incident.title), esc(incident.severity),
                     str(incident.status), _resolution(ending), took, str(incident.events),
                     str(summary.runs_of[incident.id]), " ".join(refs)])  # fmt: skip
    columns = ["#", "opened (UTC)", "title", "severity", "status", "resolution", "time to mitigate",
               "events", "runs", "source"]  # fmt: skip
    out += [*table(columns, rows), ""] if rows else ["No incident.", ""]
    out += ["## Noisiest rules", ""]
    noisy = [[esc(rule), str(count), str(summary.rule_failures[rule])]
             for rule, count in summary.rules.most_common(NOISIEST)]  # fmt: skip
    out += [*table(["rule", "runs", "failed"], noisy), ""] if noisy else ["No run.", ""]
    out += ["## Noisiest alerts", ""]
    alerts = [[esc(_name(event)), esc(event.host), esc(event.fingerprint), str(count),
               cites.cite("events", event.id)] for event, count in summary.alerts]  # fmt: skip
    columns = ["alert", "host", "fingerprint", "fired", "example"]
    out += [*table(columns, alerts), ""] if alerts else ["No alert.", ""]
    out += ["## Remediations that failed or escalated", ""]
    cut_failed = sum(summary.rule_failures.values())
    if cut_failed > len(summary.failed):
        out += [f"The first {len(summary.failed)} of {cut_failed} failed runs.", ""]
    failed = [[when(r.created_at), esc(r.rule), esc(r.target), r.state, cites.cite("runs", r.id)]
              for r in summary.failed]  # fmt: skip
    failed += [[when(e.time), esc(e.labels.get("rule", "")), esc(_target(e)),
                f"escalated ({esc(e.labels.get('reason', ''))})", cites.cite("events", e.id)]
               for e in summary.escalations]  # fmt: skip
    columns = ["created (UTC)", "rule", "target", "outcome", "source"]
    out += [*table(columns, sorted(failed)), ""] if failed else ["None.", ""]
    for title, path in (charts or {}).items():
        out += [f"![{esc(title)}]({path})", ""]
    out += ["## Sources", "", *cites.lines(), ""]
    return "\n".join(out)


def _target(escalation: Event) -> str:
    return escalation.labels.get("target") or escalation.resource


def _name(event: Event) -> str:
    return event.labels.get("alertname") or event.kind or event.source


def charts(summary: Oncall) -> dict[str, str]:
    """The summary's charts as SVG, by title."""
    # Here, not at the top: the plotting library costs a Markdown summary, which has none.
    from opsmedic.reports.charts import over_time, per_day

    opened = [incident.opened_at for incident, _ in summary.incidents]
    ttm = [(i.opened_at, t) for i, e in summary.incidents if (t := summary.ttm(i, e)) is not None]
    window = (summary.since, summary.until)
    return {
        "Incidents and remediations per day": per_day(
            "Incidents and remediations per day",
            {"incidents": opened, "remediations": summary.remediation_times}, *window),
        "Time to mitigate": over_time("Time to mitigate (s)", "incidents", ttm),
    }  # fmt: skip


def as_json(summary: Oncall) -> dict[str, Any]:
    """The summary as JSON: times in epoch seconds, as the API gives them."""
    return {
        "since": summary.since, "until": summary.until,
        "incidents_total": summary.incidents_total,
        "incidents": [{"id": i.id, "title": i.title, "severity": i.severity,
                       "status": str(i.status), "opened_at": i.opened_at,
                       "resolution": _resolution(e), "time_to_mitigate_s": summary.ttm(i, e),
                       "events": i.events, "runs": summary.runs_of[i.id]}
                      for i, e in summary.incidents],
        "runs": dict(summary.runs),
        "noisiest_rules": [{"rule": r, "runs": n, "failed": summary.rule_failures[r]}
                           for r, n in summary.rules.most_common(NOISIEST)],
        "noisiest_alerts": [{"alert": _name(e), "host": e.host, "fingerprint": e.fingerprint,
                             "fired": n, "example_event": e.id} for e, n in summary.alerts],
        "failed_runs": [{"id": r.id, "rule": r.rule, "target": r.target, "state": r.state,
                         "created_at": r.created_at} for r in summary.failed],
        "escalations": [{"id": e.id, "time": e.time, "rule": e.labels.get("rule", ""),
                         "reason": e.labels.get("reason", ""), "target": _target(e)}
                        for e in summary.escalations],
    }  # fmt: skip
