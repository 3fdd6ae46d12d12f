"""Post-mortem drafts: every timestamp and number traced back to the stored row it cites,
an open incident said to be open, store text that stays text, one draft per incident."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from fractions import Fraction
from functools import partial
from itertools import permutations
from typing import Any

import pytest
import sqlalchemy as sa

from opsmedic.config.slos import SloConfig
from opsmedic.errors import NotFoundError
from opsmedic.reports.budget import SloBudget
from opsmedic.reports.drafts import draft_due, write_draft
from opsmedic.reports.markdown import esc, secs, when
from opsmedic.slo.budget_use import budget_uses, probe_readers, use_burndown
from opsmedic.store import Store
from opsmedic.store import schema as s
from report_scenes import incident_scene, probe_incident
from store_fixtures import T0

_CITE = re.compile(r"\[\^(\d+)\]")
_DEFINITION = re.compile(r"^\[\^(\d+)\]: (\w+) row (.+)$")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_DURATION = re.compile(r"(?<![\d.])(\d+\.\d) s\b")
_COUNT = re.compile(r"(?<![\w.])(\d+) (event|flap)(s?)\b")
_UNESCAPE = re.compile(r"\\(.)")
_SPENT = re.compile(r"(?P<bad>\d+) bad of (?P<total>\d+) requests .*: (?P<share>[\d.]+) % of the "
                    r"period's budget, (?P<allowed>[\d.]+) bad requests allowed")  # fmt: skip
_OBJECTIVE = re.compile(r"objective ([\d.]+) %")
_KEYS: dict[str, tuple[sa.Table, tuple[str, ...]]] = {
    "incidents": (s.incidents, ("id",)), "timeline": (s.timeline, ("id",)),
    "events": (s.events, ("id",)), "runs": (s.runs, ("id",)),
    "deployments": (s.deployments, ("id",)),
    "incident_alerts": (s.incident_alerts, ("incident_id", "fingerprint")),
    "flag_changes": (s.flag_changes, ("key", "version")),
}  # fmt: skip


def _samples(store: Store, key: str) -> dict[str, Any]:
    """The sample minutes a footnote names ("SLO FROM to TO", both minutes included), summed
    straight from slo_samples."""
    slo, span = key.split(" ", 1)
    first, last = (int(datetime.strptime(m, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp())
                   // 60 for m in span.split(" to "))  # fmt: skip
    c = s.slo_samples.c
    stmt = sa.select(sa.func.coalesce(sa.func.sum(c.good), 0),
                     sa.func.coalesce(sa.func.sum(c.total), 0)).where(
        c.slo == slo, c.minute >= first, c.minute <= last)  # fmt: skip
    with store._engine.connect() as conn:
        good, total = conn.execute(stmt).one()
    return {"first": first * 60.0, "last": last * 60.0, "good": int(good), "total": int(total),
            "bad": int(total) - int(good)}  # fmt: skip


def _row(store: Store, table_name: str, key: str) -> dict[str, Any]:
    """The stored row a footnote names, read straight from its table (not by the reports)."""
    if table_name == "slo_samples":
        return _samples(store, key)
    table, columns = _KEYS[table_name]
    values: list[Any] = key.split(" version ") if table_name == "flag_changes" else key.split()
    if table_name == "timeline":
        values = [int(key)]
    if table_name == "flag_changes":
        values[1] = int(values[1])
    where = [table.c[c] == v for c, v in zip(columns, values, strict=True)]
    with store._engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(*where)).mappings().one())


def _times(rows: list[dict[str, Any]]) -> list[float]:
    return [v for row in rows for k, v in row.items()
            if isinstance(v, float) and k not in ("value",)]  # fmt: skip


def trace(store: Store, markdown: str) -> int:
    """Check every fact line of a draft against the rows it cites; returns how many values
    (timestamps, durations, counts) were traced."""
    facts, _, sources = markdown.partition("## Sources")
    rows = {}
    for line in sources.strip().splitlines():
        number, table_name, key = _DEFINITION.match(line).groups()  # type: ignore[union-attr]
        rows[number] = (table_name, _row(store, table_name, _UNESCAPE.sub(r"\1", key)))
    facts = facts.split("## Root cause")[0]  # what follows is for people to write
    traced = 0
    for line in facts.splitlines():
        if line.startswith(("> **Still", "|---", "| time |", "| metric |", "| rule |",
                            "- SLO budget consumed: not measured")):  # fmt: skip
            continue  # the banner says when it was read; table heads; no figure
        if line.endswith(": none named by its events and runs"):
            continue  # no figure, nothing to cite
        cited = [rows[n] for n in _CITE.findall(line)]
        values = _STAMP.findall(line) + _DURATION.findall(line) + _COUNT.findall(line)
        if line.startswith(("- ", "| ", "  - ")) or values:
            assert cited, f"a fact without a source: {line!r}"
        cited_rows = [row for _, row in cited]
        times = _times(cited_rows)
        for stamp in _STAMP.findall(line):
            assert stamp in {when(t) for t in times}, (stamp, line)
        for duration in _DURATION.findall(line):
            assert f"{duration} s" in {secs(b - a) for a, b in permutations(times, 2)}, line
        for count, noun, plural in _COUNT.findall(line):
            assert any(row.get(f"{noun}s") == int(count) for row in cited_rows), line
            assert (plural == "") == (count == "1"), line  # 1 event, 2 events
        traced += _trace_budget(line, [row for name, row in cited if name == "slo_samples"])
        for table_name, row in cited:  # a timeline row is quoted whole, as stored
            if table_name == "timeline" and line.startswith("| 2"):
                assert f"| {esc(row['kind'])}: {esc(row['message'])} |" in line
        traced += len(values)
    return traced


def _trace_budget(line: str, samples: list[dict[str, Any]]) -> int:
    """An SLO's budget line (occurrences): its bad and total requests are the sums of the
    first sample minutes it cites, what is allowed the objective's share of the second's
    total (its window), and the percent their ratio. Returns how many numbers it checked."""
    spent = _SPENT.search(line)
    if spent is None:
        return 0
    span, period = samples
    objective = float(_OBJECTIVE.search(line).group(1))  # type: ignore[union-attr]
    assert (int(spent["bad"]), int(spent["total"])) == (span["bad"], span["total"]), line
    allowed = (1 - Fraction(repr(objective)) / 100) * period["total"]
    assert math.isclose(float(spent["allowed"]), allowed, rel_tol=1e-5), line
    # The percent can be worked out again from the numbers printed beside it.
    assert spent["share"] == f"{100 * span['bad'] / float(spent['allowed']):.2f}", line
    return 4


def test_every_timestamp_and_number_of_a_draft_traces_to_its_row(store: Store) -> None:
    scene = incident_scene(store)
    found = write_draft(store, scene.incident_id, T0 + 1000)
    assert trace(store, found.markdown) >= 25
    text = found.markdown
    assert "| TTA (detection to acknowledgement) | 60.0 s |" in text
    assert "| TTM (detection to mitigation) | 42.2 s |" in text
    assert "| TTR (detection to resolution) | 300.0 s |" in text
    assert "Resolution: automatic (the engine)" in text
    assert "deployment rolled\\_back: checkout v2 to production by bob" in text
    assert "flag new\\_checkout changed by cli carol" in text
    assert "acknowledged by alice" in text.split("## What people did")[1]
    for section in ("Root cause", "Five whys", "Lessons learned", "Action items"):
        assert f"## {section} **TO FILL**" in text
    assert "SLO budget consumed: not measured" in text  # the SLO work fills this, never a guess
    assert "Still" not in text


def test_an_open_incident_draft_says_so_and_claims_no_end(store: Store) -> None:
    scene = incident_scene(store, resolve=False)
    found = write_draft(store, scene.incident_id[-8:], T0 + 500)
    trace(store, found.markdown)
    assert "> **Still mitigated** when this draft was read (2023-11-14 22:21:40 UTC)" in (
        found.markdown
    )
    assert "| TTR (detection to resolution) | not yet |" in found.markdown
    assert "Resolution: not resolved [^1]" in found.markdown


def test_store_text_stays_text(store: Store) -> None:
    scene = incident_scene(store, instance="<script>alert(1)</script> *x* [y](javascript:z)")
    markdown = write_draft(store, scene.incident_id, T0 + 1000).markdown
    trace(store, markdown)
    assert "<script>" not in markdown and "](javascript" not in markdown


def test_one_draft_per_incident_written_once_resolved_past_the_reopen_window(
    store: Store,
) -> None:
    scene = incident_scene(store)
    resolved = T0 + 300
    assert draft_due(store, resolved + 1800, 1800) == []  # still inside its window
    (auto,) = draft_due(store, resolved + 1801, 1800)
    assert (auto.incident_id, auto.trigger) == (scene.incident_id, "auto")
    assert draft_due(store, resolved + 5000, 1800) == []  # one draft, not one per pass
    stored = store.reports.draft(scene.incident_id)
    assert stored == auto
    again = write_draft(store, scene.incident_id, resolved + 6000)  # on demand: rewritten
    assert store.reports.draft(scene.incident_id) == again and again.trigger == "on_demand"


def test_a_draft_older_than_the_resolution_is_written_again_once(store: Store) -> None:
    from opsmedic.lifecycle import Action

    scene = incident_scene(store, resolve=False)
    write_draft(store, scene.incident_id, T0 + 100)  # on demand, while it was still open
    store.incident_action(scene.incident_id, Action.RESOLVE, "alice", T0 + 200)
    (auto,) = draft_due(store, T0 + 200 + 1801, 1800)
    assert "Still" not in auto.markdown and "by hand at 2023-11-14 22:16:40 UTC" in auto.markdown
    store.incident_action(scene.incident_id, Action.REOPEN, "alice", T0 + 5000)
    assert draft_due(store, T0 + 9000, 1800) == []  # open again: nothing due
    store.incident_action(scene.incident_id, Action.RESOLVE, "bob", T0 + 6000)
    assert [d.incident_id for d in draft_due(store, T0 + 9000, 1800)] == [scene.incident_id]
    assert draft_due(store, T0 + 9500, 1800) == []


def test_the_slo_work_adds_its_budget_lines_through_the_hook(store: Store) -> None:
    from opsmedic.reports.markdown import Citations
    from opsmedic.store.report_rows import Story

    def budget(story: Story, cites: Citations) -> list[str]:
        ref = cites.cite("incidents", story.incident.id)
        return [f"- SLO budget consumed: from {story.incident.events} events {ref}"]

    scene = incident_scene(store)
    markdown = write_draft(store, scene.incident_id, T0 + 1000, budget=budget).markdown
    trace(store, markdown)
    assert "- SLO budget consumed: from 2 events [^1]" in markdown
    assert "not measured" not in markdown


def _slo(name: str, service: str, **more: Any) -> SloConfig:
    data = {"name": name, "service": service, "objective": 99.5, "window": "1d",
            "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}, **more}  # fmt: skip
    return SloConfig.model_validate(data)


def _budget(slos: list[SloConfig], store: Store) -> SloBudget:
    return SloBudget(partial(budget_uses, slos, store.slo_samples),
                     partial(use_burndown, slos, store.slo_samples), lambda: T0 + 1000)  # fmt: skip


def test_the_budget_an_incident_consumed_traces_to_the_sample_minutes(store: Store) -> None:
    """The incident's events name the service checkout: its SLOs' lines say the requests
    spent in the incident's minutes against the day's budget, each number traced to the
    sample rows; an SLO of checkout with no samples says no data; another service's SLO is
    not shown."""
    m = int(T0 // 60)
    store.slo_samples.add({("checkout_avail", minute): [98 if m <= minute <= m + 5 else 100,
                                                        100, 0]
                           for minute in range(m - 600, m + 30)})  # fmt: skip
    store.slo_samples.add({("other", minute): [0, 10, 0] for minute in range(m, m + 5)})
    slos = [_slo("checkout_avail", "checkout"), _slo("checkout-empty", "checkout"),
            _slo("other", "payments")]  # fmt: skip
    budget = _budget(slos, store)
    scene = incident_scene(store)
    markdown = write_draft(store, scene.incident_id, T0 + 1000, budget=budget).markdown
    assert trace(store, markdown) >= 29
    impact = markdown.split("## Impact")[1].split("## Timeline")[0]
    # Opened T0 (22:13:20), resolved T0 + 300 (22:18:20): the minutes 22:13 to 22:18, each
    # with 2 bad of 100; the day to 22:18 has 600 + 6 minutes of 100 requests: 0.5 % of them.
    assert (
        "checkout\\_avail (service checkout, objective 99.5 %, window 1d): 12 bad of 600 "
        "requests in the minutes 2023-11-14 22:13:00 to 2023-11-14 22:18:00 UTC"
    ) in impact
    assert "3.96 % of the period's budget, 303 bad requests allowed in its window to " in impact
    assert "SLO checkout-empty (service checkout, objective 99.5 %, window 1d): no data" in impact
    assert "other" not in impact and "not measured" not in impact
    assert [u.slo for u in budget.uses] == ["checkout_avail", "checkout-empty"]
    assert list(budget.charts()) == ["Error budget left: checkout_avail"]


def test_a_service_without_an_slo_says_the_budget_is_not_measured(store: Store) -> None:
    budget = _budget([_slo("pay", "payments")], store)
    scene = incident_scene(store)
    markdown = write_draft(store, scene.incident_id, T0 + 1000, budget=budget).markdown
    trace(store, markdown)
    assert ("- SLO budget consumed: not measured: no SLO is declared for checkout [^") in markdown


def test_an_open_incident_is_measured_until_the_draft_is_read(store: Store) -> None:
    m = int(T0 // 60)
    store.slo_samples.add({("checkout_avail", minute): [99, 100, 0]
                           for minute in range(m - 10, m + 20)})  # fmt: skip
    scene = incident_scene(store, resolve=False)
    budget = _budget([_slo("checkout_avail", "checkout")], store)  # read at T0 + 1000
    markdown = write_draft(store, scene.incident_id, T0 + 1000, budget=budget).markdown
    assert trace(store, markdown) > 0
    # From its opening (22:13:20) to the minute it was read (22:30:00), not the samples after.
    assert ("18 bad of 1800 requests in the minutes 2023-11-14 22:13:00 to 2023-11-14 "
            "22:30:00 UTC") in markdown  # fmt: skip


def test_a_gap_during_the_incident_is_no_good_time(store: Store) -> None:
    """Samples before the incident and none during it: the line says so, and spends nothing."""
    m = int(T0 // 60)
    store.slo_samples.add({("checkout_avail", minute): [100, 100, 0]
                           for minute in range(m - 100, m)})  # fmt: skip
    budget = _budget([_slo("checkout_avail", "checkout")], store)
    scene = incident_scene(store)
    markdown = write_draft(store, scene.incident_id, T0 + 1000, budget=budget).markdown
    trace(store, markdown)
    assert ("no samples in the minutes 2023-11-14 22:13:00 to 2023-11-14 22:18:00 UTC [^") in (
        markdown
    )
    assert "(a gap in its measuring, not counted as good); 50 bad requests allowed" in markdown


def test_a_probes_own_incident_is_measured_by_the_slos_reading_that_probe(store: Store) -> None:
    """The readings of probe info name no service: the SLO whose SLI reads info measures
    the incident all the same, its line traced to the readings and the sample minutes; an SLO
    of another probe is not shown."""
    m = int(T0 // 60)
    store.slo_samples.add({("info-fast", minute): [90 if m <= minute <= m + 5 else 100, 100, 0]
                           for minute in range(m - 600, m + 30)})  # fmt: skip
    slos = [SloConfig.model_validate({"name": name, "objective": 99.5, "window": "1d",
                                      "sli": {"latency": {"probe": probe, "threshold": "50ms"}}})
            for name, probe in (("info-fast", "info"), ("data-fast", "data"))]  # fmt: skip
    readers = probe_readers(slos, {"info": "http", "data": "http"})
    budget = SloBudget(partial(budget_uses, slos, store.slo_samples),
                       partial(use_burndown, slos, store.slo_samples), lambda: T0 + 1000,
                       readers)  # fmt: skip
    markdown = write_draft(store, probe_incident(store), T0 + 1000, budget=budget).markdown
    assert trace(store, markdown) > 0
    impact = markdown.split("## Impact")[1].split("## Timeline")[0]
    assert "not measured" not in impact
    assert (
        "SLO info-fast (service -, objective 99.5 %, window 1d): 60 bad of 600 requests "
        "in the minutes 2023-11-14 22:13:00 to 2023-11-14 22:18:00 UTC"
    ) in impact
    assert "data-fast" not in impact
    assert [u.slo for u in budget.uses] == ["info-fast"]


def _fast(name: str, probe: str, objective: float = 99.5) -> SloConfig:
    return SloConfig.model_validate({"name": name, "objective": objective, "window": "1d",
                                     "sli": {"latency": {"probe": probe, "threshold": "50ms"}}})  # fmt: skip


def test_a_small_allowance_is_shown_with_the_digits_of_its_percent(store: Store) -> None:
    """162 requests in the day at 99.9 %: 0.162 bad requests allowed (not 0.2, from which
    the 617.28 % beside it could not be worked out); the trace re-derives it."""
    store.slo_samples.add({("info-fast", int(T0 // 60)): [161, 162, 0]})
    slos = [_fast("info-fast", "info", 99.9)]
    budget = SloBudget(partial(budget_uses, slos, store.slo_samples),
                       partial(use_burndown, slos, store.slo_samples), lambda: T0 + 1000,
                       probe_readers(slos, {"info": "http"}))  # fmt: skip
    markdown = write_draft(store, probe_incident(store), T0 + 1000, budget=budget).markdown
    assert trace(store, markdown) > 0
    assert ": 617.28 % of the period's budget, 0.162 bad requests allowed in its window" in (
        markdown
    )


def test_an_incident_never_acknowledged_says_none_recorded_and_counts_in_words(
    store: Store,
) -> None:
    """Resolved without an acknowledgement or a mitigation: TTA and TTM are none recorded,
    never "not yet"; while it is open they are not yet. One event is "1 event"."""
    resolved = write_draft(store, probe_incident(store), T0 + 1000).markdown
    assert "| TTA (detection to acknowledgement) | none recorded |" in resolved
    assert "| TTM (detection to mitigation) | none recorded |" in resolved
    assert "- 2 events, 0 flaps [^" in resolved
    opened = write_draft(store, probe_incident(store, "data", resolve=False), T0 + 1000).markdown
    assert trace(store, opened) > 0
    assert "| TTA (detection to acknowledgement) | not yet |" in opened
    assert "- 1 event, 0 flaps [^" in opened and ": firing, 1 event, first " in opened


def test_an_unknown_incident_is_named(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no incident id starts or ends with 'zzzzzz'"):
        write_draft(store, "zzzzzz", T0)


def test_pruning_an_incident_prunes_its_draft(store: Store) -> None:
    scene = incident_scene(store)
    write_draft(store, scene.incident_id, T0 + 1000)
    store.prune(T0 + 10_000)
    assert store.reports.draft(scene.incident_id) is None
