"""Part of bench/reports.py (its `prometheus_agrees`): opsmedic's burn rates and budget against
a real Prometheus over the same samples.

One SLO (99.9 %, occurrences) gets 31 days of per-minute samples: about 100 requests a minute
with 0.05 % errors, error bursts ending exactly at and just past the evaluation times (window
edges), a two-hour gap with no samples, and, on the Prometheus side, a counter reset (the
exporter restarting). opsmedic keeps them as its per-minute rows (slo_samples); Prometheus
gets them as OpenMetrics counters `slo_requests_total` and `slo_errors_total`, one sample at
the end of each minute, backfilled with `promtool tsdb create-blocks-from openmetrics` and
queried at the same instants with Sloth-style expressions:

    sum(increase(slo_errors_total[W])) / sum(increase(slo_requests_total[W])) / (1 - 0.999)

for W in 5m, 30m, 1h, 6h, 3d (the burn rates) and 30d (1 - burn = budget remaining).
Agreement: each burn rate within 0.001 (0.1 % of the budget's rate). A window that starts or
ends in the gap makes Prometheus extrapolate both counters where opsmedic sums what it has; the
ratio cancels the extrapolation, and those windows are compared too (`at_gap_edge` counts
them). Needs Debian's `prometheus` (prometheus and promtool on PATH). Progress on stderr;
alone, the last line of stdout is JSON.

    .venv/bin/python bench/_slo_prometheus.py [--instants 40] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from opsmedic.config.slos import SloConfig
from opsmedic.slo.watch import statuses
from opsmedic.store.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from services_prometheus import openmetrics, running_prometheus  # the SLI tests' Prometheus

DAYS = 31
OBJECTIVE = 99.9
ALLOWED = round(1 - OBJECTIVE / 100, 12)  # the error ratio the objective allows, as PromQL reads
TOLERANCE = 0.001  # of a burn rate: 0.1 % of the rate at which the budget lasts the window
WINDOWS = {"5m": 5, "30m": 30, "1h": 60, "6h": 360, "3d": 4320, "30d": 43200}
SLI = {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}
SLO = SloConfig.model_validate({"name": "api", "objective": OBJECTIVE, "sli": SLI})


def _samples(last: int, instants: list[int]) -> tuple[dict[int, tuple[int, int]], range]:
    """minute → (good, total) over DAYS up to `last`, with bursts at the instants' edges."""
    rng = random.Random(18)
    first = last - DAYS * 1440 + 1
    gap = range(last - 2 * 1440, last - 2 * 1440 + 120)
    rows = {}
    for m in range(first, last + 1):
        if m in gap:
            continue
        total = 90 + rng.randrange(21)
        bad = sum(rng.random() < 0.0005 for _ in range(total))
        rows[m] = (total - bad, total)
    for n, at in enumerate(instants):
        # Alternately: a burst in the window's last minutes, or one just past its start.
        edge = at if n % 2 == 0 else at - 60 - 2
        for m in range(edge - 3, edge + 1):
            if m in rows:
                total = rows[m][1]
                rows[m] = (total - total // 3, total)
    return rows, gap


def _query(base: str, expr: str, at: float) -> float | None:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(url, timeout=30) as reply:
        result = json.load(reply)["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: 0/0, no data


def missing() -> str | None:
    """What is not installed for this part (None: all is)."""
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install prometheus)"
    return None


def compare(n_instants: int, keep: bool) -> dict[str, Any]:
    """Ask opsmedic and Prometheus the same burn rates at `n_instants` evaluation times."""
    work = Path(tempfile.mkdtemp(prefix="slo-prom-"))
    # Ending a day ago, in whole minutes: blocks in the past, nothing in Prometheus' head.
    last = int(time.time() // 60) - 1440
    rng = random.Random(7)
    instants = sorted({last - rng.randrange(0, 4 * 1440) for _ in range(n_instants)})
    gap_start = last - 2 * 1440  # _samples' gap: two hours without samples
    instants = sorted({*instants, gap_start + 10, gap_start + 100})  # in it, and an hour past
    rows, gap = _samples(last, instants)

    store = Store(f"sqlite:///{work / 'opsmedic.db'}")
    store.migrate()
    store.slo_samples.add({("api", m): [g, t, 0] for m, (g, t) in rows.items()})
    metrics = work / "samples.om"
    openmetrics(rows, metrics, reset_at=last - 3 * 1440 + 17)
    started = time.perf_counter()
    try:
        with running_prometheus(work, metrics) as url:
            print(f"backfilled and started in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)  # fmt: skip
            compared = agreed = at_gap = 0
            worst = 0.0
            disagreements = []
            for minute in instants:
                # opsmedic at any moment in the minute; Prometheus at its end, where the window
                # [T - W, T] holds the samples of exactly the W minutes up to this one.
                (status,) = statuses([SLO], store, minute * 60 + 30.0)
                ours = {label: status.burn.get(length) for label, length in WINDOWS.items()}
                left = status.budget_left
                ours["30d"] = None if left is None else 1 - left
                # Prometheus' delta runs from the sample before the window's first minute to the
                # one of its last: with either in the gap it extrapolates.
                touches_gap = {label: (minute - length) in gap or minute in gap
                               for label, length in WINDOWS.items()}  # fmt: skip
                for label in WINDOWS:
                    expr = (f"sum(increase(slo_errors_total[{label}])) / "
                            f"sum(increase(slo_requests_total[{label}])) / {ALLOWED}")  # fmt: skip
                    theirs = _query(url, expr, (minute + 1) * 60)
                    mine = None if ours[label] is None else float(ours[label])
                    at_gap += touches_gap[label]
                    compared += 1
                    if mine is None or theirs is None:
                        same = mine is None and theirs is None
                        diff = 0.0 if same else float("inf")
                    else:
                        diff = abs(mine - theirs)
                    worst = max(worst, diff)
                    if diff <= TOLERANCE:
                        agreed += 1
                    else:
                        disagreements.append({"minute": minute, "window": label, "opsmedic": mine,
                                              "prometheus": theirs})  # fmt: skip
    finally:
        store.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{agreed}/{compared} burn rates within {TOLERANCE}; worst difference {worst:.6f}",
          file=sys.stderr)  # fmt: skip
    return {
        "samples_minutes": len(rows), "instants": len(instants), "compared": compared,
        "agreed": agreed, "at_gap_edge": at_gap, "tolerance": TOLERANCE,
        "worst_difference": worst,
        "prometheus_agrees": agreed == compared and compared > 0,
        "disagreements": disagreements[:10], "work": str(work) if keep else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instants", type=int, default=40, help="evaluation times compared")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    if (why := missing()) is not None:
        sys.exit(why)
    print(json.dumps(compare(args.instants, args.keep)))


if __name__ == "__main__":
    main()
