"""The engine benchmark's cost of recording suppressed decisions, at a 90 %-suppressed workload.

N events of N / 10 alerts, each alert repeated ten times, through the workload's 99 rules
that never match and one that matches every event, throttled once per alert: a tenth of the
events runs its `noop`, nine tenths are throttled. The same durable replay (SQLite store, in
process: `opsmedic replay`'s own code, without a command's start-up) runs with
`record_suppressed: true` and `false`, alternately, five times each; the best rate of each
counts (the machine is shared). cost = 1 - rate_recording / rate_off; cost_cpu the same on
CPU seconds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from _engine_workload import make_rules, opsmedic_rules_yaml, write_events
from _proc import log, rounded

REPEATS = 10  # events per alert: one runs, nine are throttled
ROUNDS = 5
THROTTLED_RULE = """- name: r000-throttled
  when: {"source": "bench", "kind": "disk_usage", "resource": "/var/log/app"}
  do: [{noop: {}}]
  throttle: {once_within: 1h, per: [fingerprint]}
"""


def _events(n: int) -> list[dict[str, Any]]:
    """Alert i % (n / 10): every alert's repeats are spread over the whole file."""
    alerts = max(1, n // REPEATS)
    return [{"source": "bench", "kind": "disk_usage", "resource": "/var/log/app",
             "host": f"web-{i % 40:02d}", "labels": {"env": "prod"}, "value": 95.0,
             "fingerprint": f"alert-{i % alerts:07d}"} for i in range(n)]  # fmt: skip


def _replay(work: Path, events: Path, rules: Path, record: bool) -> tuple[float, float]:
    """One durable replay in process (SQLite store, as `opsmedic replay`); returns the seconds
    from the file's first line to the last run finished. In process, so that the start-up of
    a command (seconds here, and as noisy as the machine) is not in the figure it measures.
    Returns (wall seconds, CPU seconds of the process, every thread)."""
    from opsmedic.cli.replay import _replay as replay
    from opsmedic.runtime import build, build_registry

    work.mkdir(parents=True, exist_ok=True)
    db = work / "opsmedic.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    config = work / "opsmedic.yaml"
    config.write_text(f"store: sqlite:///{db}\nrules_dir: {rules}\n"
                      f"record_suppressed: {'true' if record else 'false'}\n")  # fmt: skip
    rt = build(config, registry=build_registry())
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    read = asyncio.run(replay(rt, events))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if rt.store is not None:
        rt.store.close()
    if read.bad:
        raise SystemExit(f"suppressed replay: {len(read.bad)} bad lines")
    return seconds, cpu


def _stored(db: Path) -> tuple[int, int, int]:
    """(runs, suppressed rows, suppressed decisions counted) in the store."""
    con = sqlite3.connect(db)
    try:
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        rows, total = con.execute(
            "SELECT count(*), coalesce(sum(count), 0) FROM suppressed"
        ).fetchone()
    finally:
        con.close()
    return runs, rows, total


def suppressed_figures(work: Path, n: int) -> dict[str, Any]:
    """The `suppressed` figures of bench/engine.py's JSON, with `mismatches` if any."""
    from opsmedic.logs import configure_logging

    with (work / "opsmedic-suppressed.log").open("w", encoding="utf-8") as logged:
        configure_logging("info", stream=logged)  # as the service logs, into a file
        return _figures(work, n)


def _figures(work: Path, n: int) -> dict[str, Any]:
    events = _events(n)
    alerts = len({e["fingerprint"] for e in events})
    path = work / "suppressed-events.jsonl"
    write_events(path, events)
    rules = work / "suppressed-rules"
    rules.mkdir(exist_ok=True)
    others = opsmedic_rules_yaml(make_rules()[1:])  # the 99 that never match
    (rules / "bench.yaml").write_text(THROTTLED_RULE + others)
    best: dict[bool, float] = {}
    best_cpu: dict[bool, float] = {}
    mismatches: list[str] = []
    for round_ in range(ROUNDS):
        for record in (False, True):
            log(f"opsmedic: suppressed workload, {n} events, recording "
                f"{'on' if record else 'off'} (round {round_ + 1} of {ROUNDS})")  # fmt: skip
            run = work / f"suppressed-{'on' if record else 'off'}"
            wall, cpu = _replay(run, path, rules, record)
            best[record] = min(best.get(record, wall), wall)
            best_cpu[record] = min(best_cpu.get(record, cpu), cpu)
            runs, rows, total = _stored(run / "opsmedic.db")
            want = (alerts, alerts, n - alerts) if record else (alerts, 0, 0)
            if (runs, rows, total) != want:
                held = f"{runs} runs, {rows} rows counting {total}"
                mismatches.append(
                    f"suppressed workload, recording {record}: store holds {held}; {want} expected"
                )
    on, off = n / best[True], n / best[False]
    figures: dict[str, Any] = {
        "events": n, "suppressed_share": rounded((n - alerts) / n, 2),
        "rate_recording": rounded(on), "rate_off": rounded(off), "cost": rounded(1 - on / off, 3),
        # The same on CPU seconds: steadier than wall time on a machine others share.
        "cost_cpu": rounded(1 - best_cpu[False] / best_cpu[True], 3),
    }  # fmt: skip
    if mismatches:
        figures["mismatches"] = mismatches
    return figures


if __name__ == "__main__":  # on its own: python bench/_engine_suppressed.py [N]
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="opsmedic-bench-suppressed-") as tmp:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
        print(json.dumps(suppressed_figures(Path(tmp), count)))
