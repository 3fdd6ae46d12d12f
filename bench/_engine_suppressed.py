"""The engine benchmark's cost of recording suppressed decisions, at a 90 %-suppressed workload.

N events of N / 10 alerts, each alert repeated ten times, through the workload's 99 rules
that never match and one that matches every event, throttled once per alert: a tenth of the
events runs its `noop`, nine tenths are throttled. The same durable `opsmedic replay` (SQLite
store) runs with `record_suppressed: true` and `false`, alternately, twice each; the best
rate of each counts (the machine is shared). cost = 1 - rate_recording / rate_off.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from _engine_workload import make_rules, opsmedic_rules_yaml, write_events
from _proc import log, rounded, run_measured

REPO = Path(__file__).resolve().parent.parent
REPEATS = 10  # events per alert: one runs, nine are throttled
ROUNDS = 2
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


def _replay(work: Path, events: Path, rules: Path, record: bool, timeout_s: float) -> float:
    """One durable replay; returns its wall seconds after checking what it stored."""
    tag = "on" if record else "off"
    work.mkdir(parents=True, exist_ok=True)
    db = work / "opsmedic.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    config = work / "opsmedic.yaml"
    config.write_text(f"store: sqlite:///{db}\nrules_dir: {rules}\n"
                      f"record_suppressed: {'true' if record else 'false'}\n")  # fmt: skip
    exe = REPO / ".venv" / "bin" / "opsmedic"
    cmd = [str(exe) if exe.exists() else "opsmedic", "replay", str(events), "--config",
           str(config)]  # fmt: skip
    proc = run_measured(cmd, stdout_path=work / f"{tag}.stdout.txt",
                        stderr_path=work / f"{tag}.stderr.txt", timeout_s=timeout_s,
                        cwd=work)  # fmt: skip
    if proc.timed_out or proc.returncode != 0:
        raise SystemExit(f"suppressed replay ({tag}) failed (rc={proc.returncode}):\n"
                         f"{proc.stderr()[-2000:]}")  # fmt: skip
    return proc.wall_s


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


def suppressed_figures(work: Path, n: int, timeout_s: float) -> dict[str, Any]:
    """The `suppressed` figures of bench/engine.py's JSON, with `mismatches` if any."""
    events = _events(n)
    alerts = len({e["fingerprint"] for e in events})
    path = work / "suppressed-events.jsonl"
    write_events(path, events)
    rules = work / "suppressed-rules"
    rules.mkdir(exist_ok=True)
    others = opsmedic_rules_yaml(make_rules()[1:])  # the 99 that never match
    (rules / "bench.yaml").write_text(THROTTLED_RULE + others)
    best: dict[bool, float] = {}
    mismatches: list[str] = []
    for round_ in range(ROUNDS):
        for record in (False, True):
            log(f"opsmedic: suppressed workload, {n} events, recording "
                f"{'on' if record else 'off'} (round {round_ + 1} of {ROUNDS})")  # fmt: skip
            run = work / f"suppressed-{'on' if record else 'off'}"
            wall = _replay(run, path, rules, record, timeout_s)
            best[record] = min(best.get(record, wall), wall)
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
    }  # fmt: skip
    if mismatches:
        figures["mismatches"] = mismatches
    return figures


if __name__ == "__main__":  # on its own: python bench/_engine_suppressed.py [N]
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="opsmedic-bench-suppressed-") as tmp:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
        print(json.dumps(suppressed_figures(Path(tmp), count, 900.0)))
