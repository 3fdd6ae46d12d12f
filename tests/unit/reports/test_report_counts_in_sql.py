"""The on-call summary's and stats' counts, made in SQL, equal a run-by-run tally in Python
(the way both were computed before) over a random store: counts, their order, percentiles."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import sqlalchemy as sa

from opsmedic.reports import oncall
from opsmedic.reports.stats import PERCENTILES, percentile, stats
from opsmedic.store import Store
from opsmedic.store import schema as s
from store_fixtures import T0

STATES = ["succeeded", "succeeded", "failed", "timed_out", "interrupted", "skipped", "running"]
ACTIONS = [["restart_service", "notify"], ["notify"], ["archive_logs", "archive_logs"], []]
FAILED = ("failed", "timed_out", "interrupted")


def _fill(url: str, n: int) -> list[dict[str, Any]]:
    """`n` runs with ties in created_at, unfinished runs, repeated actions and dry runs."""
    rng = random.Random(18)
    rows = []
    for i in range(n):
        created = T0 + rng.randrange(400) * 10.0  # ties: many runs share a creation time
        started = None if rng.random() < 0.1 else created + rng.random()
        finished = None if started is None or rng.random() < 0.1 else started + rng.random() * 60
        rows.append({"id": f"r{rng.randrange(10**6):06d}-{i}", "rule": f"rule{rng.randrange(7)}",
                     "event_id": "ev", "target": f"web-{rng.randrange(3)}", "fingerprint": "fp",
                     "actions": rng.choice(ACTIONS), "queue": rng.choice(["remediation", "other"]),
                     "dry_run": rng.random() < 0.2, "state": rng.choice(STATES), "message": "",
                     "steps": [], "created_at": created, "started_at": started,
                     "finished_at": finished,
                     "incident_id": rng.choice([None, "inc1", "inc2"])})  # fmt: skip
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(s.events.insert(), [{"id": "ev", "source": "lb", "kind": "k", "resource": "",
                      "host": "", "labels": {}, "value": None, "severity": "info",
                      "status": "firing", "fingerprint": "fp", "time": T0, "payload": {}}])  # fmt: skip
        conn.execute(s.runs.insert(), rows)
    engine.dispose()
    return sorted(rows, key=lambda r: (r["created_at"], r["id"]))


def _tally(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """One rule's or action's figures, run by run, as reports.stats gives them."""
    done = [r["finished_at"] - r["started_at"] for r in runs
            if r["started_at"] is not None and r["finished_at"] is not None]  # fmt: skip
    ok = sum(r["state"] == "succeeded" for r in runs)
    bad = sum(r["state"] in FAILED for r in runs)
    return {"name": name, "runs": len(runs), "succeeded": ok, "failed": bad,
            "skipped": sum(r["state"] == "skipped" for r in runs),
            "dry_runs": sum(r["dry_run"] for r in runs),
            "success_rate": None if ok + bad == 0 else ok / (ok + bad),
            "duration_s": {f"p{p}": percentile(sorted(done), p) for p in PERCENTILES}}  # fmt: skip


def _expected_stats(runs: list[dict[str, Any]], action: str | None) -> dict[str, Any]:
    runs = [r for r in runs if action is None or action in r["actions"]]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    by_action: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_rule.setdefault(r["rule"], []).append(r)
        for name in dict.fromkeys(r["actions"]):
            if action is None or name == action:
                by_action.setdefault(name, []).append(r)

    def ordered(groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return sorted(
            (_tally(g, n) for n, g in groups.items()), key=lambda t: (-t["runs"], t["name"])
        )

    return {"first": runs[0]["created_at"] if runs else None,
            "last": runs[-1]["created_at"] if runs else None,
            "rules": ordered(by_rule), "actions": ordered(by_action)}  # fmt: skip


def test_stats_in_sql_equal_a_tally_run_by_run(store: Store, store_url: str) -> None:
    runs = _fill(store_url, 600)
    window = (T0 + 500, T0 + 3500)
    inside = [r for r in runs if window[0] <= r["created_at"] < window[1]]
    for rule, target, action in [(None, None, None), ("rule3", None, None),
                                 (None, "web-1", "notify"), (None, None, "archive_logs"),
                                 (None, None, "nothing")]:  # fmt: skip
        found = stats(store, *window, rule=rule, target=target, action=action).as_json()
        kept = [r for r in inside if rule in (None, r["rule"]) and target in (None, r["target"])]
        expected = _expected_stats(kept, action)
        assert {k: found[k] for k in expected} == expected, (rule, target, action)


def test_oncall_counts_in_sql_equal_a_tally_run_by_run(store: Store, store_url: str) -> None:
    runs = _fill(store_url, 600)
    window = (T0 + 500, T0 + 3500)
    inside = [r for r in runs if window[0] <= r["created_at"] < window[1]]
    summary = oncall.summarize(store, *window)
    states, rules = Counter[str](), Counter[str]()
    for r in inside:  # first appearance decides the order of equal counts
        states[r["state"]] += 1
        rules[r["rule"]] += 1
    assert list(summary.runs.items()) == list(states.items())
    assert list(summary.rules.items()) == list(rules.items())
    assert summary.rules.most_common(10) == rules.most_common(10)
    assert summary.rule_failures == Counter(r["rule"] for r in inside if r["state"] in FAILED)
    assert summary.runs_of == Counter(r["incident_id"] for r in inside if r["incident_id"])
    failed = [r for r in inside if r["state"] in FAILED][: oncall.MAX_FAILED]
    assert [(f.id, f.rule, f.target, f.state, f.created_at) for f in summary.failed] == [
        (r["id"], r["rule"], r["target"], r["state"], r["created_at"]) for r in failed
    ]
    assert summary.remediation_times == [
        r["created_at"] for r in inside
        if r["queue"] == "remediation" and not r["dry_run"] and r["state"] != "skipped"
    ]  # fmt: skip
