"""The engine benchmark's opsmedic side: in-process classification, `opsmedic replay`, latency."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _proc import ProcResult, percentile, rounded, run_measured

REPO = Path(__file__).resolve().parent.parent


def opsmedic_classify(rules_dir: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """In-process classification only: load_rules + RuleSet.match over every event."""
    from opsmedic.model import Event
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import build_registry

    ruleset = load_rules(rules_dir, build_registry())
    objs = [Event(**e) for e in events]  # built outside the timed loop
    matched: dict[str, int] = {}
    t0 = time.perf_counter()
    for event in objs:
        for rule in ruleset.match(event):
            matched[rule.name] = matched.get(rule.name, 0) + 1
    elapsed = time.perf_counter() - t0
    return {"rules": len(ruleset), "seconds": elapsed, "events_per_s": len(objs) / elapsed,
            "matched": matched}  # fmt: skip


def opsmedic_replay(
    workdir: Path, events_path: Path, rules_dir: Path, timeout_s: float, tag: str,
    seed: Callable[[Path], None] | None = None,
) -> tuple[ProcResult, dict[str, int | None]]:  # fmt: skip
    """`opsmedic replay` end to end with a fresh SQLite store (`seed` writes into it first);
    returns the process figures and the rows it left in the store (events, runs by state)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "opsmedic.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if seed is not None:
        seed(db)
    config = workdir / "opsmedic.yaml"
    config.write_text(f"store: sqlite:///{db}\nrules_dir: {rules_dir}\n")
    exe = REPO / ".venv" / "bin" / "opsmedic"
    cmd = [str(exe) if exe.exists() else "opsmedic", "replay", str(events_path),
           "--config", str(config)]  # fmt: skip
    proc = run_measured(
        cmd, stdout_path=workdir / f"{tag}.stdout.txt", stderr_path=workdir / f"{tag}.stderr.txt",
        timeout_s=timeout_s, cwd=workdir,
    )  # fmt: skip
    return proc, store_counts(db)


def opsmedic_memory(workdir: Path, events_path: Path, rules_dir: Path) -> dict[str, Any]:
    """The same replay in process with no store: actions run, nothing is recorded, as
    ansible-rulebook runs (it keeps no history). Times file reading to last run finished."""
    from opsmedic.cli.replay import _replay
    from opsmedic.runtime import build, build_registry

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "opsmedic.yaml"
    config.write_text(f"rules_dir: {rules_dir}\n")
    rt = build(config, with_store=False, registry=build_registry())
    t0 = time.perf_counter()
    read = asyncio.run(_replay(rt, events_path))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "bad": len(read.bad), "finished": rt.engine.stats()["finished"]}


def store_counts(db: Path) -> dict[str, int | None]:
    """Rows in the store's events and runs tables; None where the table is not found."""
    counts: dict[str, int | None] = {"events": None, "runs": None, "runs_succeeded": None}
    if not db.exists():
        return counts
    con = sqlite3.connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "events" in tables:
            counts["events"] = con.execute("SELECT count(*) FROM events").fetchone()[0]
        if "runs" in tables:
            counts["runs"] = con.execute("SELECT count(*) FROM runs").fetchone()[0]
            cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            if "state" in cols:
                counts["runs_succeeded"] = con.execute(
                    "SELECT count(*) FROM runs WHERE state = 'succeeded'"
                ).fetchone()[0]
    finally:
        con.close()
    return counts


def opsmedic_latency(
    work: Path, rules_dir: Path, events: list[dict[str, Any]], rate: float, seconds: float
) -> dict[str, Any]:
    """Event -> action-start latency at a fixed offered rate, in process, SQLite store.

    The workload's events are offered at `rate` per second on an absolute schedule (no drift)
    for `seconds`, each as its own `Engine.submit` call, as an API request would be. The
    latency of a hit runs from its scheduled arrival (so a stalled loop counts against
    opsmedic) to the moment the noop action is called; `ack` is arrival -> durable reply.
    """
    work.mkdir(parents=True, exist_ok=True)
    config = work / "opsmedic.yaml"
    config.write_text(f"store: sqlite:///{work / 'opsmedic.db'}\nrules_dir: {rules_dir}\n")
    # This process holds the whole workload (N event dicts, millions of objects) that an
    # opsmedic service would not: frozen, the collector's full passes skip them instead of
    # charging their 50-100 ms to the engine's tail latency. `opsmedic run` freezes its own
    # start-up objects the same way.
    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(_latency(config, events, rate, seconds))
    finally:
        gc.unfreeze()


async def _latency(
    config: Path, events: list[dict[str, Any]], rate: float, seconds: float
) -> dict[str, Any]:
    from opsmedic.model import Event, Outcome, Run
    from opsmedic.plugins import ActionContext
    from opsmedic.runtime import build, build_registry

    registry = build_registry()
    noop = registry.actions["noop"]
    started: dict[str, float] = {}

    async def stamped(params: Any, ctx: ActionContext) -> Outcome:
        started[ctx.run_id] = time.perf_counter()
        return await noop.run(params, ctx)

    registry.actions["noop"] = dataclasses.replace(noop, run=stamped)
    rt = build(config, registry=registry)
    finished: list[Run] = []
    rt.engine.on_finished = finished.append
    await rt.engine.start()

    total = min(int(rate * seconds), len(events))
    arrival: dict[str, float] = {}
    acks: list[float] = []

    async def offer(event: Event, at: float) -> None:
        await rt.engine.submit([event])
        acks.append(time.perf_counter() - at)

    tasks = []
    t0 = time.perf_counter() + 0.05
    for k in range(total):
        at = t0 + k / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        spec = events[k]
        event = Event(**spec, id=f"lat{k:07d}")
        arrival[event.id] = at
        tasks.append(asyncio.create_task(offer(event, at)))
    offered_s = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    await rt.engine.close()
    hits = sorted((arrival[r.event_id], started[r.id]) for r in finished if r.id in started)
    ack = [a * 1000 for a in acks]
    return {
        **latency_figures("opsmedic", [(start - at) * 1000 for at, start in hits]),
        "opsmedic_latency_offered_per_s": rounded(total / offered_s),
        "opsmedic_ack_p50_ms": rounded(percentile(ack, 50), 2),
        "opsmedic_ack_p99_ms": rounded(percentile(ack, 99), 2),
    }


def latency_figures(who: str, ms: list[float]) -> dict[str, Any]:
    """p50/p99/max over all samples (in arrival order) and over the second half alone, which
    leaves out warm-up (the JVM's JIT, the first SQLite pages) on either side."""
    late = ms[len(ms) // 2 :]
    return {
        f"{who}_latency_actions": len(ms),
        f"{who}_latency_p50_ms": rounded(percentile(ms, 50), 2),
        f"{who}_latency_p99_ms": rounded(percentile(ms, 99), 2),
        f"{who}_latency_max_ms": rounded(max(ms, default=0.0), 2),
        f"{who}_latency_2nd_half_p50_ms": rounded(percentile(late, 50), 2),
        f"{who}_latency_2nd_half_p99_ms": rounded(percentile(late, 99), 2),
    }
