"""A big store for the reports (events, runs, incidents with timelines over a window), and
the time and peak RSS of each report over it: one JSON object as the last line.

    .venv/bin/python bench/_reports_store.py --events 100000 --runs 10000 --incidents 500
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opsmedic.model import RunState
from opsmedic.reports import oncall
from opsmedic.reports.drafts import write_draft
from opsmedic.reports.html import page
from opsmedic.reports.stats import stats
from opsmedic.store import Store
from opsmedic.store import schema as s

DAY = 86_400.0
BATCH = 5000
_STATES = [RunState.SUCCEEDED.value] * 8 + [RunState.FAILED.value, RunState.SKIPPED.value]


def build(store: Store, events: int, runs: int, incidents: int, days: int, end: float) -> str:
    """Fill `store` (seeded, so every run is the same); returns one incident's id. Rows go in
    in time order, as a live store fills: SQLite then finds a window's rows in few pages."""
    rng = random.Random(7)
    start = end - days * DAY

    def times(n: int) -> list[float]:
        return sorted(start + rng.random() * days * DAY for _ in range(n))

    opened_at, event_times, created_at = times(incidents), times(events), times(runs)
    engine = store._engine
    incident_ids = [f"inc{i:08d}" for i in range(incidents)]
    with engine.begin() as conn:
        rows = []
        for n, iid in enumerate(incident_ids):
            opened = opened_at[n]
            rows.append({"id": iid, "key": f"k{n}", "title": f"HighErrorRate on svc{n % 40}",
                         "source": "alertmanager", "severity": "page", "status": "resolved",
                         "opened_at": opened, "updated_at": opened + 900,
                         "mitigated_at": opened + 60, "resolved_at": opened + 900,
                         "events": 200})  # fmt: skip
        conn.execute(s.incidents.insert(), rows)
        lines = []
        for row in rows:
            t = row["opened_at"]
            lines.append({"incident_id": row["id"], "time": t, "kind": "status_changed",
                          "message": "opened by alertmanager", "ref": ""})  # fmt: skip
            lines += [{"incident_id": row["id"], "time": t + k, "kind": "event_received",
                       "message": "alert firing", "ref": ""} for k in range(1, 18)]  # fmt: skip
            lines.append({"incident_id": row["id"], "time": t + 60, "kind": "status_changed",
                          "message": "mitigated: run of fix succeeded", "ref": ""})  # fmt: skip
            lines.append({"incident_id": row["id"], "time": t + 900, "kind": "status_changed",
                          "message": "resolved: every alert resolved", "ref": ""})  # fmt: skip
        for i in range(0, len(lines), BATCH):
            conn.execute(s.timeline.insert(), lines[i : i + BATCH])
    for i in range(0, events, BATCH):
        batch = [{"id": f"ev{n:09d}", "source": "alertmanager", "kind": "HighErrorRate",
                  "resource": f"svc{n % 40}", "host": f"web-{n % 25}",
                  "labels": {"alertname": "HighErrorRate", "service": f"svc{n % 40}"},
                  "value": 1.0, "severity": "page", "status": "firing",
                  "fingerprint": f"fp{n % 300}", "time": event_times[n],
                  "payload": {}, "incident_id": incident_ids[n % incidents]}
                 for n in range(i, min(i + BATCH, events))]  # fmt: skip
        with engine.begin() as conn:
            conn.execute(s.events.insert(), batch)
    for i in range(0, runs, BATCH):
        batch = []
        for n in range(i, min(i + BATCH, runs)):
            created = created_at[n]
            batch.append({"id": f"run{n:09d}", "rule": f"rule-{n % 30}", "event_id": f"ev{n:09d}",
                          "target": f"web-{n % 25}", "fingerprint": f"fp{n % 300}",
                          "actions": ["restart_service", "notify"], "queue": "remediation",
                          "dry_run": False, "state": rng.choice(_STATES), "message": "",
                          "steps": [], "created_at": created, "started_at": created,
                          "finished_at": created + rng.expovariate(1 / 20),
                          "incident_id": incident_ids[n % incidents]})  # fmt: skip
        with engine.begin() as conn:
            conn.execute(s.runs.insert(), batch)
    return incident_ids[0]


def _timed(what: str, call: Any, figures: dict[str, float]) -> Any:
    began = time.perf_counter()
    found = call()
    figures[what] = round(time.perf_counter() - began, 3)
    print(f"{what}: {figures[what]} s", file=sys.stderr)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--url", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    end = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.url or f"sqlite:///{Path(tmp) / 'opsmedic.db'}")
        store.migrate()
        figures: dict[str, float] = {}
        incident = _timed("fill_s", lambda: build(store, args.events, args.runs, args.incidents,
                                                  args.days, end), figures)  # fmt: skip
        _timed("postmortem_s", lambda: write_draft(store, incident, end), figures)
        summary = _timed("oncall_30d_s", lambda: oncall.summarize(store, end - 30 * DAY, end),
                         figures)  # fmt: skip
        _timed("oncall_30d_html_s", lambda: page("On-call", oncall.markdown(summary),
                                                 oncall.charts(summary)), figures)  # fmt: skip
        _timed("stats_90d_s", lambda: stats(store, end - args.days * DAY, end), figures)
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"events": args.events, "runs": args.runs, "incidents": args.incidents,
                      "backend": "postgresql" if args.url else "sqlite", **figures,
                      "peak_rss_mib": round(peak, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
