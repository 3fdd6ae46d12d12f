"""Benchmark: from a disk crossing its threshold to archive_logs starting, with default settings.

`opsmedic run` watches a log directory with the `disk` probe at its default interval (5 s,
jitter 10 %) and a rule with no `for:` that runs `archive_logs` on it. Each trial writes
120 MB of old rotated logs at a random moment of the probe's cycle (the threshold is a
free-space minimum 112 MB below what was free at the start, so the end of the write crosses
it), fsyncs, and measures the time until the archive
run is claimed (`started_at` in the store), then until it finished. The archive is removed
between trials so every trial starts from the same free space. The peer, logrotate, has no
figure to measure: Debian runs it from a daily timer (`logrotate.timer`, OnCalendar=daily).
Last line of stdout: JSON with p50, p95 and max.

    .venv/bin/python bench/disk_reaction.py [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import log, percentile, rounded
from idle import start, stop

from opsmedic.archive.space import free_bytes
from opsmedic.model import Run
from opsmedic.store.store import Store

REPO = Path(__file__).resolve().parent.parent
OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
LOG_BYTES = 120_000_000
# The threshold sits this far below the free space at the start: only the last few MB of a
# trial's write cross it, so the end of the write is the moment of crossing (within ~50 ms).
MARGIN = LOG_BYTES - 8_000_000
TRIAL_TIMEOUT_S = 60.0
RULE = "archive-on-low-disk"


def write_world(work: Path) -> Path:
    logs = work / "logs"
    logs.mkdir()
    (work / "rules").mkdir()
    (work / "rules" / "disk.yaml").write_text(yaml.safe_dump([{
        "name": RULE,
        "when": {"source": "disk", "kind": "logs-disk"},
        "do": [{"archive_logs": {"dir": str(logs), "include": ["*.log.*"],
                                 "to": str(work / "archive")}}],
    }], sort_keys=False))  # fmt: skip
    config = work / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{work / 'opsmedic.db'}",
        "rules_dir": "rules",
        "probes": [{"name": "logs-disk", "type": "disk",  # interval: the default
                    "params": {"paths": [str(logs)], "max_used_percent": 100,
                               "max_inodes_used_percent": 100,
                               "min_free_bytes": free_bytes(logs) - MARGIN}}],
    }, sort_keys=False))  # fmt: skip
    return config


def fill(logs: Path, trial: int) -> float:
    """Write the rotated logs (two hours old, so min_age passes); the time they are on disk."""
    line = "2026-11-22T10:00:00Z INFO GET /api/v1/orders/{:08x} 200 took={}ms trial={}\n"
    old = time.time() - 7200
    for n in range(1, 5):
        path = logs / f"app.log.{trial}-{n}"
        with path.open("w") as f:
            i = 0
            while f.tell() < LOG_BYTES // 4:
                f.write("".join(line.format(j * 7919, j % 977, trial) for j in range(i, i + 5000)))
                i += 5000
            f.flush()
            os.fsync(f.fileno())
        os.utime(path, (old, old))
    return time.time()


def wait_for_run(store: Store, seen: set[str]) -> Run:
    deadline = time.monotonic() + TRIAL_TIMEOUT_S
    while time.monotonic() < deadline:
        for run in store.list_runs(rule=RULE, limit=50):
            if run.id not in seen and run.finished_at is not None:
                seen.add(run.id)
                return run
        time.sleep(0.05)
    raise SystemExit(f"no finished {RULE} run within {TRIAL_TIMEOUT_S:g}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    (REPO / ".bench").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-disk-", dir=REPO / ".bench"))
    config = write_world(work)
    proc = start([OPSMEDIC, "run", "-c", str(config)], work, "opsmedic")
    started, finished, states = [], [], []
    try:
        time.sleep(3.0)  # start-up and a first healthy reading
        store = Store(f"sqlite:///{work / 'opsmedic.db'}")
        seen: set[str] = set()
        rng = random.Random(args.seed)
        for trial in range(args.trials):
            time.sleep(rng.uniform(0.0, 5.0))  # any phase of the probe's 5 s cycle
            crossed = fill(work / "logs", trial)
            run = wait_for_run(store, seen)
            assert run.started_at is not None
            assert run.finished_at is not None
            started.append(run.started_at - crossed)
            finished.append(run.finished_at - crossed)
            states.append(str(run.state))
            log(f"trial {trial}: started {started[-1]:.2f}s, done {finished[-1]:.2f}s, {run.state}")
            shutil.rmtree(work / "archive", ignore_errors=True)
            time.sleep(1.0)  # the probe reads ok again before the next crossing
        store.close()
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "bench": "disk_reaction",
        "trials": args.trials,
        "probe_interval_s": 5.0,
        "to_archive_start_s": {"p50": rounded(percentile(started, 50), 2),
                               "p95": rounded(percentile(started, 95), 2),
                               "max": rounded(max(started), 2)},
        "to_archive_done_s": {"p50": rounded(percentile(finished, 50), 2),
                              "max": rounded(max(finished), 2)},
        "goal_s": 10.0,
        "all_succeeded": all(s == "succeeded" for s in states),
    }  # fmt: skip
    print(json.dumps(summary))
    return 0 if summary["all_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
