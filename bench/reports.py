"""Benchmark: the reports and SLOs of issue 18 over a big store, against Prometheus.

1. Reports: a store of 1,000,000 events, 100,000 runs and 5,000 incidents over 90 days
   (bench/_reports_store.py) with 10 SLOs holding 30 days of per-minute samples
   (bench/_slo_eval.py); each report is a whole `opsmedic` command (start-up included), timed
   with its peak RSS (bench/_proc.py): `slo`, `report oncall --since 30d`, `report postmortem
   INCIDENT` and `stats --since 90d` (every run of the store). Goal: each ≤ 2 s. The floor
   (`startup_floor_s`): `stats --since 1s`, start-up and an empty window.
2. SLO evaluation's CPU per minute of `opsmedic run` with 10 SLOs (bench/_slo_eval.py), as a
   share of one core. Goal: ≤ 1 %.
3. Agreement with Prometheus 2.42 over the same samples (bench/_slo_prometheus.py).
4. Time-to-page: an error spike in a live service on loopback, to opsmedic's page event and to
   Alertmanager's webhook from Prometheus with Sloth-style rules (bench/_reports_page.py).
   Goal: opsmedic's at most half of Prometheus + Alertmanager's.

Parts whose programs are missing say "not installed" and give null. Progress on stderr; the
last line of stdout is one JSON object.

    .venv/bin/python bench/reports.py --events 100000 --trials 1   # about 5 min
    .venv/bin/python bench/reports.py                                # about 15 min
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' services
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _reports_page
import _slo_eval
import _slo_prometheus
from _proc import log, run_measured
from _reports_store import build

from opsmedic.store.store import Store

REPO = Path(__file__).resolve().parent.parent
OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
GOAL_S = 2.0


def _reports(work: Path, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fill the store, then time each report as a whole command: (seconds, peak RSS MiB)."""
    url = args.url or f"sqlite:///{work / 'opsmedic.db'}"
    store = Store(url)
    store.migrate()
    now = time.time()
    began = time.perf_counter()
    incident = build(store, args.events, args.runs, args.incidents, args.days, now)
    _slo_eval.fill(store, now)
    store.close()
    log(f"store filled in {time.perf_counter() - began:.0f} s")
    config = work / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({"store": url, "slos": _slo_eval.slo_docs()}))
    commands = {"slo": ["slo"], "oncall": ["report", "oncall", "--since", "30d"],
                "postmortem": ["report", "postmortem", incident],
                "stats": ["stats", "--since", f"{args.days}d"],
                # The floor: start-up, imports, config and store opened, a window with nothing.
                "floor": ["stats", "--since", "1s"]}  # fmt: skip
    seconds: dict[str, Any] = {}
    rss: dict[str, Any] = {}
    for name, argv in commands.items():
        found = run_measured([OPSMEDIC, *argv, "-c", str(config)],
                             stdout_path=work / f"{name}.out", stderr_path=work / f"{name}.err",
                             timeout_s=args.timeout)  # fmt: skip
        if found.returncode != 0:
            raise SystemExit(f"{name} failed ({found.returncode}): {found.stderr()[-2000:]}")
        seconds[name], rss[name] = round(found.wall_s, 3), round(found.peak_rss_mib, 1)
        log(f"{' '.join(argv)}: {found.wall_s:.2f} s, {found.peak_rss_mib:.0f} MiB")
    return seconds, rss


def _time_to_page(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    if args.trials == 0:
        return {"opsmedic": None, "prometheus": None, "skipped": True}
    if (why := _reports_page.missing()) is not None:
        log(f"time-to-page: {why}")
        return {"opsmedic": None, "prometheus": None, "not_installed": why}
    rng = random.Random(args.seed)
    trials = []
    for n in range(args.trials):
        found = _reports_page.trial(work / f"page{n}", OPSMEDIC, args.warmup, args.page_timeout,
                                    rng)  # fmt: skip
        log(f"time-to-page trial {n}: {found}")
        trials.append(found)

    def median(who: str) -> float | None:
        got = [t[who] for t in trials if t[who] is not None]
        return round(statistics.median(got), 2) if len(got) == len(trials) else None

    return {"opsmedic": median("opsmedic"), "prometheus": median("prometheus"), "trials": trials,
            "probe_interval": _reports_page.PROBE_INTERVAL,
            "prometheus_scrape_and_evaluation_interval": _reports_page.EVALUATION_INTERVAL,
            "alertmanager_group_wait": _reports_page.GROUP_WAIT}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, help="default: events / 10")
    parser.add_argument("--incidents", type=int, help="default: events / 200")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--url", help="a PostgreSQL URL for the reports' store (default: SQLite)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per report command, s")
    parser.add_argument("--slo-minutes", type=int, default=30, help="of `run` simulated")
    parser.add_argument("--instants", type=int, default=40, help="Prometheus instants; 0: skip")
    parser.add_argument("--trials", type=int, default=3, help="time-to-page spikes; 0: skip")
    parser.add_argument("--warmup", type=float, default=110.0, help="healthy s before a spike")
    parser.add_argument("--page-timeout", type=float, default=300.0, help="s after a spike")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    args.runs = args.events // 10 if args.runs is None else args.runs
    args.incidents = max(args.events // 200, 1) if args.incidents is None else args.incidents
    (REPO / ".bench").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-reports-", dir=REPO / ".bench"))
    try:
        seconds, rss = _reports(work, args)
        slo_store = Store(f"sqlite:///{work / 'slo-eval.db'}")
        slo_store.migrate()
        evaluation = _slo_eval.measure(slo_store, args.slo_minutes)
        slo_store.close()
        if args.instants == 0:
            agreement: dict[str, Any] = {"prometheus_agrees": None, "skipped": True}
        elif (why := _slo_prometheus.missing()) is not None:
            log(f"Prometheus agreement: {why}")
            agreement = {"prometheus_agrees": None, "not_installed": why}
        else:
            agreement = _slo_prometheus.compare(args.instants, keep=False)
            log(f"Prometheus agreement: {agreement['agreed']}/{agreement['compared']}")
        page = _time_to_page(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ours, theirs = page["opsmedic"], page["prometheus"]
    floor = seconds.pop("floor")
    reports = seconds
    print(json.dumps({
        "events": args.events, "runs": args.runs, "incidents": args.incidents, "days": args.days,
        "backend": "postgresql" if args.url else "sqlite",
        "reports_s": reports, "startup_floor_s": floor,
        "peak_rss_mib": max(rss.values()), "peak_rss_mib_by_report": rss,
        "reports_goal_met": all(s <= GOAL_S for s in reports.values()),
        "slo_cpu_share": evaluation["slo_cpu_share"], "slo_cpu_goal_met": evaluation["goal_met"],
        "prometheus_agrees": agreement["prometheus_agrees"],
        "prometheus_agreement": {k: v for k, v in agreement.items() if k != "prometheus_agrees"},
        "time_to_page_s": page,
        "time_to_page_goal_met": None if ours is None or theirs is None else ours <= theirs / 2,
        "work": str(work) if args.keep else None,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
