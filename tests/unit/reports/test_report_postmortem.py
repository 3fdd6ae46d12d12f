"""Post-mortem drafts: every timestamp and number traced back to the stored row it cites,
an open incident said to be open, store text that stays text, one draft per incident."""

from __future__ import annotations

import re
from itertools import permutations
from typing import Any

import pytest
import sqlalchemy as sa

from opsmedic.errors import NotFoundError
from opsmedic.reports.drafts import draft_due, write_draft
from opsmedic.reports.markdown import esc, secs, when
from opsmedic.store import Store
from opsmedic.store import schema as s
from report_scenes import incident_scene
from store_fixtures import T0

_CITE = re.compile(r"\[\^(\d+)\]")
_DEFINITION = re.compile(r"^\[\^(\d+)\]: (\w+) row (.+)$")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_DURATION = re.compile(r"(?<![\d.])(\d+\.\d) s\b")
_COUNT = re.compile(r"(?<![\w.])(\d+) (events|flaps)\b")
_UNESCAPE = re.compile(r"\\(.)")
_KEYS: dict[str, tuple[sa.Table, tuple[str, ...]]] = {
    "incidents": (s.incidents, ("id",)), "timeline": (s.timeline, ("id",)),
    "events": (s.events, ("id",)), "runs": (s.runs, ("id",)),
    "deployments": (s.deployments, ("id",)),
    "incident_alerts": (s.incident_alerts, ("incident_id", "fingerprint")),
    "flag_changes": (s.flag_changes, ("key", "version")),
}  # fmt: skip


def _row(store: Store, table_name: str, key: str) -> dict[str, Any]:
    """The stored row a footnote names, read straight from its table (not by the reports)."""
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
        for count, column in _COUNT.findall(line):
            assert any(row.get(column) == int(count) for row in cited_rows), line
        for table_name, row in cited:  # a timeline row is quoted whole, as stored
            if table_name == "timeline" and line.startswith("| 2"):
                assert f"| {esc(row['kind'])}: {esc(row['message'])} |" in line
        traced += len(values)
    return traced


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


def test_an_unknown_incident_is_named(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no incident id starts or ends with 'zzzzzz'"):
        write_draft(store, "zzzzzz", T0)


def test_pruning_an_incident_prunes_its_draft(store: Store) -> None:
    scene = incident_scene(store)
    write_draft(store, scene.incident_id, T0 + 1000)
    store.prune(T0 + 10_000)
    assert store.reports.draft(scene.incident_id) is None
