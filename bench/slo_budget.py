"""Benchmark: the SLO budget lines of a post-mortem draft and the burn-down chart, with 10 SLOs
over a store holding 30 days of per-minute samples for each.

Times, on SQLite: the budget each SLO of a service spent over an hour-long incident against
its 30-day window (slo/budget_use.py's budget_uses: what a draft's Impact section reads), and
one SLO's burn-down series with its SVG (`opsmedic slo NAME --chart`, the post-mortem's HTML).
Progress goes to stderr; the last line of stdout is one JSON object.

    .venv/bin/python bench/slo_budget.py [--slos 10] [--days 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from opsmedic.config.slos import SloConfig
from opsmedic.reports.budget import burndown_svg
from opsmedic.slo.budget_use import budget_uses, burndown
from opsmedic.store.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slo-budget-") as work:
        store = Store(f"sqlite:///{Path(work) / 'opsmedic.db'}")
        store.migrate()
        now = time.time()
        last = int(now // 60)
        slos = [SloConfig.model_validate({
            "name": f"slo{i}", "service": "checkout", "objective": 99.9, "window": f"{args.days}d",
            "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}},
        }) for i in range(args.slos)]  # fmt: skip
        minutes = range(last - args.days * 1440 + 1, last + 1)
        for slo in slos:  # about 1 % errors: one minute in 13 has 10 bad of 100
            store.slo_samples.add({(slo.name, m): [90 if m % 13 == 0 else 100, 100, 0]
                                   for m in minutes})  # fmt: skip
        print("store written", file=sys.stderr)
        started, cpu = time.perf_counter(), time.process_time()
        uses = budget_uses(slos, store.slo_samples, {"checkout"}, now - 3600, now)
        lines_s, lines_cpu = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        points = burndown(slos[0], store.slo_samples, now)
        svg = burndown_svg(slos[0].name, points)
        chart_s = time.perf_counter() - started
        store.close()
    print(json.dumps({
        "slos": len(uses), "days": args.days, "budget_lines_s": round(lines_s, 3),
        "budget_lines_cpu_s": round(lines_cpu, 3), "burndown_chart_s": round(chart_s, 3),
        "chart_points": len(points), "svg_bytes": len(svg),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
