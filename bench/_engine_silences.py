"""The engine benchmark's silences: 1,000 of them, matchers of every kind, none matching the
workload, or 10 % of its events, or none with case-insensitive regexes (bench/engine.py
--silences)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _engine_workload import HOSTS, is_hit

SILENCES = 1000
# Six of the sixty hosts: the "10 % match" variant silences every event they send.
SILENCED_HOSTS = HOSTS[:6]


def silence_matchers(
    n: int = SILENCES, matching: bool = False, folded: bool = False
) -> list[list[str]]:
    """`n` matcher lists of five shapes: `=` with `!=`, `=` with `=~`, `=` with `!~`, labels,
    and regex-only (a tenth: those the index cannot narrow, checked for every event). None
    matches an event of the workload; with `matching`, six more silence 10 % of it. With
    `folded`, every regex is case-insensitive, as operators write them for senders that vary
    the case: `(?i)`, with a group of alternatives where one is natural."""
    ci = "(?i)" if folded else ""
    found: list[list[str]] = []
    for i in range(n - (len(SILENCED_HOSTS) if matching else 0)):
        shape = i % 10
        if shape in (0, 1, 2):  # a host this fleet does not have
            found.append([f"host=db-{i:04d}", "labels.env!=dev"])
        elif shape in (3, 4):  # the workload's kinds, on hosts it does not use
            hosts = f"(?i)(web|api)-{i:04d}" if folded else f"web-{i:04d}|api-{i:04d}"
            found.append(["kind=disk_usage", f"host=~{hosts}"])
        elif shape in (5, 6):  # a team label this fleet does not use
            found.append([f"labels.team=sre-{i:04d}", "source=bench"])
        elif shape in (7, 8):  # a resource it does not watch
            found.append([f"resource=/mnt/vol-{i:04d}", f"labels.region!~{ci}eu-.*"])
        else:  # regex only
            found.append([f"host=~{ci}db-{i:04d}-.+", f"labels.env=~{ci}prod|dev"])
    if matching:
        found += [[f"host={h}", "source=bench"] for h in SILENCED_HOSTS]
    return found


def index_us(events: list[dict[str, Any]], matching: bool = False, folded: bool = False) -> float:
    """In process: µs per workload event to find its silence in the index of the 1,000."""
    from opsmedic.config.matchers import Silence, parse_matchers
    from opsmedic.engine.muting import MuteIndex, silence_mute
    from opsmedic.model import Event

    index = MuteIndex([
        silence_mute(Silence(str(i), parse_matchers(m), 0.0, 4e9, "bench", "bench", 0.0))
        for i, m in enumerate(silence_matchers(matching=matching, folded=folded))
    ])  # fmt: skip
    found = [Event(**{k: e[k] for k in ("source", "kind", "resource", "host", "labels")})
             for e in events]  # fmt: skip
    start = time.perf_counter()
    for event in found:
        index.find(event, 1.0)
    return (time.perf_counter() - start) / max(len(found), 1) * 1e6


def expected_runs(events: list[dict[str, Any]], matching: bool) -> int:
    return sum(is_hit(e) and not (matching and e["host"] in SILENCED_HOSTS) for e in events)


def seed_silences(db: Path, matching: bool, folded: bool = False) -> None:
    """Write the silences into the store the replay will open (migrated first)."""
    from opsmedic.config.matchers import new_silence
    from opsmedic.store.store import Store

    store = Store(f"sqlite:///{db}")
    try:
        store.migrate()
        now = time.time()
        for matchers in silence_matchers(matching=matching, folded=folded):
            store.silences.add(new_silence(
                matchers, now=now, starts_at=now - 60, ends_at=None, duration=86400.0,
                created_by="bench", comment="bench",
            ))  # fmt: skip
    finally:
        store.close()
