"""Property: `opsmedic replay` and `opsmedic run` (events POSTed to its API) decide the same."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_service import running_api
from opsmedic.cli.replay import _replay
from opsmedic.clock import ManualClock
from opsmedic.runtime import build, build_registry
from opsmedic.store.store import Store

T0 = 1763769600.0

# Every rule feature, with outcomes chosen by the event: `outcome: ok` succeeds, anything
# else fails (and runs on_failure). Windows of 30 s to 5 min, which the gaps below straddle.
RULES: list[dict[str, Any]] = [
    {"name": "heal", "when": {"source": "app", "kind": "down", "for": "30s"},
     "do": [{"run_command": {"argv": ["test", "{{ event.labels.outcome }}", "=", "ok"]}}],
     "on_failure": [{"run_command": {"argv": ["true"]}}],
     "throttle": {"once_within": "1m", "per": ["host"]},
     "limit": {"max_runs": 2, "within": "5m"}},
    {"name": "restart", "when": {"source": "app", "kind": "slow"},
     "do": [{"run_command": {"argv": ["test", "{{ event.labels.outcome }}", "=", "ok"]}}],
     "limit": {"max_runs": 3, "within": "5m", "per": ["host"]}},
    {"name": "cleared", "when": {"source": "db", "status": "resolved"},
     "do": [{"run_command": {"argv": ["true"]}}], "throttle": {"once_within": "2m"}},
    {"name": "db-down", "when": {"source": "db", "for": "1m"}, "do": ["noop"]},
    {"name": "page", "when": {"source": "opsmedic", "kind": "escalation"}, "do": ["noop"]},
]  # fmt: skip

GAPS = [0, 1, 29, 30, 31, 59, 60, 61, 120, 299, 301]  # seconds between events

event_st = st.fixed_dictionaries({
    "source": st.sampled_from(["app", "db"]),
    "kind": st.sampled_from(["down", "slow"]),
    "host": st.sampled_from(["web1", "web2"]),
    "status": st.sampled_from(["firing", "firing", "resolved"]),
    "labels": st.fixed_dictionaries({"outcome": st.sampled_from(["ok", "bad"])}),
    "gap": st.sampled_from(GAPS),
})  # fmt: skip


def timeline(drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with times from the drawn gaps, each with its place in the stream (`seq`, kept
    in the payload by both entry points)."""
    events, t = [], T0
    for seq, item in enumerate(drawn):
        t += item["gap"]
        events.append({**{k: v for k, v in item.items() if k != "gap"}, "time": t, "seq": seq})
    return events


def decisions(store: Store) -> list[tuple[Any, ...]]:
    """Each run as (event seq, rule, state, steps with their states, limit message), sorted;
    a run of an escalation is placed at the seq of the event that hit the limit."""
    events = store.list_events(limit=10_000)
    seq_of = {e.id: e.payload["seq"] for e in events if "seq" in e.payload}
    for e in events:
        if e.source == "opsmedic":
            seq_of[e.id] = seq_of[e.payload["event_id"]]
    return sorted(
        (seq_of[r.event_id], r.rule, str(r.state),
         tuple((s.action, s.on_failure, str(s.state)) for s in r.steps),
         r.message if r.message.startswith("limit") else "")
        for r in store.list_runs(limit=10_000)
    )  # fmt: skip


def incidents(store: Store) -> list[tuple[str, str]]:
    """Each incident's grouping key and status (mitigated by a successful run, reopened by an
    alert firing after it, resolved when all its alerts resolved)."""
    return sorted((i.key, str(i.status)) for i in store.list_incidents(limit=10_000))


async def live(tmp: Path, events: list[dict[str, Any]]) -> tuple[Any, ...]:
    """`opsmedic run` fed over HTTP, its clock moved to each event's time; each event is
    posted once the runs of the one before have finished (minutes apart, as live)."""
    clock = ManualClock(T0)
    async with running_api(tmp, RULES, clock=clock) as api, api.client(api.tokens["ingest"]) as c:
        for event in events:
            clock.advance(event["time"] - clock.now())
            reply = await c.post("/api/v1/events", json=event)
            assert reply.status_code == 202, reply.text
            await api.rt.engine.drain()
        return decisions(api.store), api.rt.engine.stats(), incidents(api.store)


def replay_files(tmp: Path, events: list[dict[str, Any]]) -> tuple[Path, Path]:
    """A config with the same rules and its own store, and the events as a JSON-lines file."""
    tmp.mkdir()
    (tmp / "rules").mkdir()
    (tmp / "rules" / "rules.yaml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    config = tmp / "opsmedic.yaml"
    config.write_text(f"store: sqlite:///{tmp / 'replay.db'}\nrules_dir: {tmp / 'rules'}\n")
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return config, path


async def replayed(config: Path, path: Path) -> tuple[Any, ...]:
    """`opsmedic replay` of the file, executing (its runtime entry, as the command calls it)."""
    rt = build(config, registry=build_registry())
    assert rt.store is not None
    assert (await _replay(rt, path)).bad == []
    return decisions(rt.store), rt.engine.stats(), incidents(rt.store)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_st, min_size=1, max_size=12))
def test_replay_and_run_reach_the_same_decisions(drawn: list[dict[str, Any]]) -> None:
    events = timeline(drawn)
    with tempfile.TemporaryDirectory() as tmp:
        was = asyncio.run(live(Path(tmp) / "live", events))
        got = asyncio.run(replayed(*replay_files(Path(tmp) / "replay", events)))
    assert got[0] == was[0]  # runs: per rule and event, states, steps, limits
    assert got[1] == was[1]  # counts: matched, planned, throttled, waiting for `for:`, limited
    assert got[2] == was[2]  # incidents and their status


def test_the_streams_cover_every_decision() -> None:
    """A fixed stream that hits each feature, so the property cannot pass on streams that
    never reach a window: for:, throttle, limit with its escalation, failures, resolved."""
    app = {"source": "app", "kind": "down", "host": "web1", "status": "firing"}
    drawn = [
        {**app, "labels": {"outcome": "bad"}, "gap": 0},
        {**app, "labels": {"outcome": "bad"}, "gap": 31},  # for: held: heal runs, fails
        {**app, "labels": {"outcome": "bad"}, "gap": 30},  # 30 s after the run: throttled
        {**app, "labels": {"outcome": "bad"}, "gap": 31},  # second run
        {**app, "labels": {"outcome": "bad"}, "gap": 61},  # limit: escalated, paged
        {
            "source": "db",
            "kind": "down",
            "host": "web2",
            "status": "resolved",
            "labels": {"outcome": "ok"},
            "gap": 1,
        },
    ]
    events = timeline(drawn)
    with tempfile.TemporaryDirectory() as tmp:
        was = asyncio.run(live(Path(tmp) / "live", events))
        got = asyncio.run(replayed(*replay_files(Path(tmp) / "replay", events)))
    assert got == was
    runs = [(seq, rule, state) for seq, rule, state, _, _ in got[0]]
    assert runs == [(1, "heal", "failed"), (3, "heal", "failed"), (4, "heal", "skipped"),
                    (4, "page", "succeeded"), (5, "cleared", "succeeded")]  # fmt: skip
    stats = got[1]
    assert stats["suppressed_throttle"] == 1 and stats["pending_for"] >= 1
    assert stats["limited"] == 1 and stats["suppressed_in_flight"] == 0
