"""Benchmark: the cost of SLO evaluation in `opsmedic run`, per minute, with 10 SLOs over a
store holding 30 days of per-minute samples for each (goal: ≤ 1 % of one core).

The SLOs (half by occurrences, half by 1-minute time slices) are evaluated as the running
evaluator does (slo/evaluator.py): every EVALUATE_EVERY_S of simulated time, topping up the
alert windows from the store, and re-summing the budget window every BUDGET_EVERY_S. The CPU
time of this process (the store's reads included: SQLite runs in it) is divided by the
simulated minutes. No peer yet: the Prometheus agreement of issue 18's bench/reports.py is
not written. Progress goes to stderr; the last line of stdout is one JSON object.

    .venv/bin/python bench/slo_eval.py [--minutes 30] [--store sqlite:///PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from opsmedic.config.slos import SloConfig
from opsmedic.slo.evaluator import BUDGET_EVERY_S, Evaluator
from opsmedic.slo.watch import EVALUATE_EVERY_S
from opsmedic.store.store import Store

SLOS = 10
DAYS = 30
NOW = 1_800_000_000.0


def _slos() -> list[SloConfig]:
    found = []
    for i in range(SLOS):
        sliced = {"budgeting": "timeslices", "timeslices": {"slice": "1m"}} if i % 2 else {}
        sli = {"events": {"total": [f"source=lb{i}"], "bad": ["severity=critical"]}}
        found.append(SloConfig.model_validate(
            {"name": f"slo{i}", "objective": 99.9, "sli": sli, **sliced}))  # fmt: skip
    return found


def _fill(store: Store) -> None:
    rng = random.Random(18)
    last = int(NOW // 60)
    for i in range(SLOS):
        rows = {(f"slo{i}", m): [100 - (rng.random() < 0.01), 100, 0]
                for m in range(last - DAYS * 1440 + 1, last + 1)}  # fmt: skip
        store.slo_samples.add(rows)
        print(f"filled slo{i}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30, help="of `opsmedic run` simulated")
    parser.add_argument("--store", help="a store URL (default: a new SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slo-bench-"))
    store = Store(args.store or f"sqlite:///{tmp / 'opsmedic.db'}")
    store.migrate()
    if store.slo_samples.window("slo0", 0, int(NOW // 60), 1, 1.0).total == 0:
        _fill(store)
    evaluator = Evaluator(_slos(), store.slo_samples)
    cpu, wall = time.process_time(), time.perf_counter()
    evaluator.refresh(NOW)
    evaluator.evaluate(NOW)
    first_cpu, first_wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"first evaluation (3 days loaded): {first_cpu:.3f} s CPU", file=sys.stderr)
    steps = int(args.minutes * 60 / EVALUATE_EVERY_S)
    cpu = time.process_time()
    for step in range(1, steps + 1):
        now = NOW + step * EVALUATE_EVERY_S
        evaluator.refresh(now)
        evaluator.evaluate(now)
    spent = time.process_time() - cpu
    per_minute = spent / args.minutes
    states = sorted({s.state for s in evaluator.statuses.values()})
    print(f"{per_minute * 1000:.1f} ms CPU per minute of run", file=sys.stderr)
    if not args.keep and args.store is None:
        (tmp / "opsmedic.db").unlink(missing_ok=True)
    print(json.dumps({
        "slos": SLOS, "days": DAYS, "minutes": args.minutes,
        "evaluate_every_s": EVALUATE_EVERY_S, "budget_every_s": BUDGET_EVERY_S,
        "first_evaluation_cpu_s": round(first_cpu, 4),
        "first_evaluation_wall_s": round(first_wall, 4),
        "cpu_s_per_minute": round(per_minute, 5),
        "slo_cpu_share": round(per_minute / 60, 6),
        "goal_met": per_minute / 60 <= 0.01, "states": states,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
