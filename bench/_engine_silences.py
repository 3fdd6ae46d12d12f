"""The engine benchmark's silences: 1,000 of them, matchers of every kind, none matching the
workload, or 10 % of its events (bench/engine.py --silences)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _engine_workload import HOSTS, is_hit

SILENCES = 1000
# Six of the sixty hosts: the "10 % match" variant silences every event they send.
SILENCED_HOSTS = HOSTS[:6]


def silence_matchers(n: int = SILENCES, matching: bool = False) -> list[list[str]]:
    """`n` matcher lists of five shapes: `=` with `!=`, `=` with `=~`, `=` with `!~`, labels,
    and regex-only (a tenth: those the index cannot narrow, checked for every event). None
    matches an event of the workload; with `matching`, six more silence 10 % of it."""
    found: list[list[str]] = []
    for i in range(n - (len(SILENCED_HOSTS) if matching else 0)):
        shape = i % 10
        if shape in (0, 1, 2):  # a host this fleet does not have
            found.append([f"host=db-{i:04d}", "labels.env!=dev"])
        elif shape in (3, 4):  # the workload's kinds, on hosts it does not use
            found.append(["kind=disk_usage", f"host=~web-{i:04d}|api-{i:04d}"])
        elif shape in (5, 6):  # a team label this fleet does not use
            found.append([f"labels.team=sre-{i:04d}", "source=bench"])
        elif shape in (7, 8):  # a resource it does not watch
            found.append([f"resource=/mnt/vol-{i:04d}", "labels.region!~eu-.*"])
        else:  # regex only
            found.append([f"host=~db-{i:04d}-.+", "labels.env=~prod|dev"])
    if matching:
        found += [[f"host={h}", "source=bench"] for h in SILENCED_HOSTS]
    return found


def expected_runs(events: list[dict[str, Any]], matching: bool) -> int:
    return sum(is_hit(e) and not (matching and e["host"] in SILENCED_HOSTS) for e in events)


def seed_silences(db: Path, matching: bool) -> None:
    """Write the silences into the store the replay will open (migrated first)."""
    from opsmedic.config.matchers import new_silence
    from opsmedic.store.store import Store

    store = Store(f"sqlite:///{db}")
    try:
        store.migrate()
        now = time.time()
        for matchers in silence_matchers(matching=matching):
            store.silences.add(new_silence(
                matchers, now=now, starts_at=now - 60, ends_at=None, duration=86400.0,
                created_by="bench", comment="bench",
            ))  # fmt: skip
    finally:
        store.close()
