"""Part of bench/reports.py: the cost of SLO evaluation in `opsmedic run`, per minute, with 10
SLOs over a store holding 30 days of per-minute samples for each (goal: ≤ 1 % of one core).

The SLOs (half by occurrences, half by 1-minute time slices) are evaluated as the running
evaluator does (slo/evaluator.py): every EVALUATE_EVERY_S of simulated time, topping up the
alert windows from the store, and re-summing the budget window every BUDGET_EVERY_S. The CPU
time of this process (the store's reads included: SQLite runs in it) is divided by the
simulated minutes. bench/reports.py runs it as its `slo_cpu_share`; alone, progress goes to
stderr and the last line of stdout is one JSON object.

    .venv/bin/python bench/_slo_eval.py [--minutes 30] [--store sqlite:///PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opsmedic.config.slos import SloConfig
from opsmedic.slo.evaluator import BUDGET_EVERY_S, Evaluator
from opsmedic.slo.watch import EVALUATE_EVERY_S
from opsmedic.store.store import Store

SLOS = 10
DAYS = 30
NOW = 1_800_000_000.0


def slo_docs() -> list[dict[str, Any]]:
    """The SLOs as opsmedic.yaml declares them: half by occurrences, half by 1-minute slices."""
    found: list[dict[str, Any]] = []
    for i in range(SLOS):
        sliced = {"budgeting": "timeslices", "timeslices": {"slice": "1m"}} if i % 2 else {}
        sli = {"events": {"total": [f"source=lb{i}"], "bad": ["severity=critical"]}}
        found.append({"name": f"slo{i}", "objective": 99.9, "sli": sli, **sliced})
    return found


def fill(store: Store, now: float) -> None:
    """DAYS of per-minute samples up to `now` for each SLO, about 1 % of minutes one short."""
    rng = random.Random(18)
    last = int(now // 60)
    for i in range(SLOS):
        rows = {(f"slo{i}", m): [100 - (rng.random() < 0.01), 100, 0]
                for m in range(last - DAYS * 1440 + 1, last + 1)}  # fmt: skip
        store.slo_samples.add(rows)
        print(f"filled slo{i}", file=sys.stderr)


def measure(store: Store, minutes: int) -> dict[str, Any]:
    """Evaluate the SLOs over `minutes` of simulated run on `store` (filled if empty)."""
    if store.slo_samples.window("slo0", 0, int(NOW // 60), 1, 1.0).total == 0:
        fill(store, NOW)
    evaluator = Evaluator([SloConfig.model_validate(doc) for doc in slo_docs()],
                          store.slo_samples)  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    evaluator.refresh(NOW)
    evaluator.evaluate(NOW)
    first_cpu, first_wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"first evaluation (3 days loaded): {first_cpu:.3f} s CPU", file=sys.stderr)
    steps = int(minutes * 60 / EVALUATE_EVERY_S)
    cpu = time.process_time()
    for step in range(1, steps + 1):
        now = NOW + step * EVALUATE_EVERY_S
        evaluator.refresh(now)
        evaluator.evaluate(now)
    per_minute = (time.process_time() - cpu) / minutes
    print(f"{per_minute * 1000:.1f} ms CPU per minute of run", file=sys.stderr)
    return {
        "slos": SLOS, "days": DAYS, "minutes": minutes,
        "evaluate_every_s": EVALUATE_EVERY_S, "budget_every_s": BUDGET_EVERY_S,
        "first_evaluation_cpu_s": round(first_cpu, 4),
        "first_evaluation_wall_s": round(first_wall, 4),
        "cpu_s_per_minute": round(per_minute, 5),
        "slo_cpu_share": round(per_minute / 60, 6),
        "goal_met": per_minute / 60 <= 0.01,
        "states": sorted({s.state for s in evaluator.statuses.values()}),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30, help="of `opsmedic run` simulated")
    parser.add_argument("--store", help="a store URL (default: a new SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slo-bench-"))
    store = Store(args.store or f"sqlite:///{tmp / 'opsmedic.db'}")
    store.migrate()
    found = measure(store, args.minutes)
    store.close()
    if not args.keep and args.store is None:
        (tmp / "opsmedic.db").unlink(missing_ok=True)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
