"""Benchmark: one rule workload through opsmedic and through ansible-rulebook, side by side.

N seeded events, 100 rules, exactly one rule matching 10 % of the events with a no-op action
(opsmedic `noop`, ansible-rulebook `none`). The same JSONL file feeds both engines. Progress
goes to stderr; the last line of stdout is one JSON object with the figures and the ratio.

    .venv/bin/python bench/engine.py [--events N] [--peer-events M] [--timeout S]
                                     [--suppressed-events K | --skip-suppressed]

`suppressed`: the cost of recording suppressed decisions at a 90 %-suppressed workload
(bench/_engine_suppressed.py): {events, suppressed_share, rate_recording, rate_off, cost}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _engine_opsmedic import (
    latency_figures,
    opsmedic_classify,
    opsmedic_latency,
    opsmedic_memory,
    opsmedic_replay,
)
from _engine_silences import SILENCES, expected_runs, index_us, seed_silences
from _engine_suppressed import suppressed_figures
from _engine_workload import (
    HIT_RULE,
    SEED,
    is_hit,
    make_events,
    make_rules,
    opsmedic_rules_yaml,
    write_events,
)
from _peer_rulebook import PeerRun, ensure_rulebook, run_rulebook
from _proc import ProcResult, log, rounded

REPO = Path(__file__).resolve().parent.parent


# --- harness --------------------------------------------------------------------------------


def _mismatch(res: dict[str, Any], message: str) -> None:
    """A correctness check failed: say so now, and in the JSON (and the exit code) at the end."""
    log(f"MISMATCH {message}")
    res.setdefault("mismatches", []).append(message)


def run_peer(
    args: argparse.Namespace,
    work: Path,
    events_path: Path,
    rules: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    """Install if needed; then a 1-event run, a correctness run, the timed run, a latency run."""
    res: dict[str, Any] = {}
    peer = ensure_rulebook(args.peer_venv)
    res["peer"] = f"ansible-rulebook {peer.version}"
    res["peer_install_s"] = rounded(peer.install_s)
    n = min(args.peer_events, len(events))

    log("peer: 1-event run (start-up and shutdown alone)")
    one = run_rulebook(peer, work / "peer-startup", events_path, 1, rules, hit_action="none",
                       timeout_s=args.timeout)  # fmt: skip
    _check_peer(one, "1-event")
    res["peer_1event_wall_s"] = rounded(one.proc.wall_s, 2)

    check_n = min(n, args.check_events)
    expected_check = sum(is_hit(e) for e in events[:check_n])
    log(f"peer: correctness run ({check_n} events, the matching rule's action is `debug`)")
    check = run_rulebook(peer, work / "peer-check", events_path, check_n, rules,
                         hit_action="debug", timeout_s=args.timeout)  # fmt: skip
    _check_peer(check, "correctness")
    res["peer_check"] = {"events": check_n, "expected_actions": expected_check,
                         "actions_run": check.hits_printed}  # fmt: skip
    if check.hits_printed != expected_check:
        _mismatch(res, f"peer ran {check.hits_printed} debug actions, {expected_check} expected")

    log(f"peer: timed run ({n} events, action `none`, timeout {args.timeout:.0f} s)")
    run = run_rulebook(peer, work / "peer-timed", events_path, n, rules, hit_action="none",
                       timeout_s=args.timeout)  # fmt: skip
    expected = sum(is_hit(e) for e in events[:n])
    res.update(_peer_figures(run, n, len(events), expected, one.proc.wall_s, res))

    lat_n = min(int(args.rate * args.latency_s), len(events))
    log(f"peer: latency run ({lat_n} events at {args.rate:.0f}/s, matching rule prints `debug`)")
    lat = run_rulebook(peer, work / "peer-latency", events_path, lat_n, rules,
                       hit_action="latency", timeout_s=args.timeout, rate=args.rate)  # fmt: skip
    _check_peer(lat, "latency")
    res.update(latency_figures("peer", lat.latencies_ms))
    expected_lat = sum(is_hit(e) for e in events[:lat_n])
    if len(lat.latencies_ms) != expected_lat:
        _mismatch(
            res, f"peer latency run: {len(lat.latencies_ms)} actions, {expected_lat} expected"
        )
    return res


def _check_peer(run: PeerRun, what: str) -> None:
    if not run.ok:
        tail = run.proc.stderr()[-2000:] or run.proc.stdout()[-2000:]
        raise SystemExit(f"peer {what} run failed (rc={run.proc.returncode}, "
                         f"timed_out={run.proc.timed_out}):\n{tail}")  # fmt: skip


def _peer_figures(
    run: PeerRun, n: int, total: int, expected: int, one_event_s: float, res: dict[str, Any]
) -> dict[str, Any]:
    wall = run.proc.wall_s
    fig: dict[str, Any] = {
        "peer_events_run": n,
        "peer_timed_out": run.proc.timed_out,
        "peer_wall_s": rounded(wall, 2),
        "peer_cpu_s": rounded(run.proc.cpu_s, 2),
        "peer_peak_rss_mib": rounded(run.proc.peak_rss_mib),
        "peer_rules_triggered": run.rules_triggered,
        "peer_expected_triggered": expected + 1,  # + the control rule that ends the run
        "peer_events_processed": run.events_processed,
    }
    if run.proc.timed_out:
        # Killed at the deadline: Drools never printed its counters; the rate is over the
        # events the source had handed over at its last progress line (every 10,000).
        done = run.progress[1] if run.progress else 0
        fig["peer_events_per_s"] = rounded(run.partial_rate)
        fig["peer_events_per_s_basis"] = (
            f"partial: killed at the timeout after {wall:.0f} s; rate over the {done} of {n} "
            "events taken by then"
        )
        return fig
    _check_peer(run, "timed")
    if run.rules_triggered != expected + 1:
        _mismatch(res, f"peer rulesTriggered={run.rules_triggered}, expected {expected + 1}")
    fig["peer_events_per_s"] = rounded(n / wall)
    fig["peer_events_per_s_basis"] = (
        "all events" if n == total else f"the first {n} of the {total} events (--peer-events)"
    )
    if run.steady_s and run.engine_ready_at:
        # In the same run: from the engine taking its first event to process exit.
        fig["peer_startup_s"] = rounded(run.engine_ready_at - run.proc.started_at, 2)
        fig["peer_events_per_s_excl_startup"] = rounded(n / run.steady_s)
    if wall > one_event_s:
        fig["peer_events_per_s_minus_1event_run"] = rounded(n / (wall - one_event_s))
    return fig


def run_opsmedic(
    args: argparse.Namespace,
    work: Path,
    events_path: Path,
    rules_dir: Path,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    """In-process classification, a 1-event replay, the timed replay, a latency run."""
    from opsmedic.logs import configure_logging

    # The in-process parts log as the service would (info, logfmt), into a file: the replay
    # processes' logs go to files too, and stdout is kept for the JSON line.
    with (work / "opsmedic-inprocess.log").open("w", encoding="utf-8") as inproc_log:
        configure_logging("info", stream=inproc_log)
        return _run_opsmedic(args, work, events_path, rules_dir, events)


def _run_opsmedic(
    args: argparse.Namespace,
    work: Path,
    events_path: Path,
    rules_dir: Path,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    n = len(events)
    expected = sum(is_hit(e) for e in events)

    log(f"opsmedic: in-process classification of {n} events")
    cls = opsmedic_classify(rules_dir, events)
    res["opsmedic_classify_events_per_s"] = rounded(cls["events_per_s"])
    if cls["matched"] != {HIT_RULE["name"]: expected}:
        _mismatch(res, f"opsmedic classified {cls['matched']}, expected {expected} hits")

    one = work / "one-event.jsonl"
    write_events(one, events[:1])
    log("opsmedic: 1-event replay (start-up and shutdown alone)")
    start, _ = opsmedic_replay(work / "ops-startup", one, rules_dir, args.timeout, "startup")
    _check_ops(start, "1-event")
    res["opsmedic_1event_wall_s"] = rounded(start.wall_s, 2)

    log(f"opsmedic: timed replay of {n} events (SQLite store, noop action)")
    proc, counts = opsmedic_replay(
        work / "ops-timed", events_path, rules_dir, args.timeout, "timed"
    )
    _check_ops(proc, "timed")
    res.update({
        "opsmedic_wall_s": rounded(proc.wall_s, 2),
        "opsmedic_cpu_s": rounded(proc.cpu_s, 2),
        "opsmedic_events_per_s": rounded(n / proc.wall_s),
        "opsmedic_events_per_s_minus_1event_run": (
            rounded(n / (proc.wall_s - start.wall_s)) if proc.wall_s > start.wall_s else None
        ),
        "opsmedic_peak_rss_mib": rounded(proc.peak_rss_mib),
        "opsmedic_store_events": counts["events"],
        "opsmedic_store_runs_succeeded": counts["runs_succeeded"],
        "opsmedic_expected_runs": expected,
    })  # fmt: skip
    if counts["events"] != n or counts["runs"] != expected or counts["runs_succeeded"] != expected:
        _mismatch(res, f"opsmedic store holds {counts}, expected {n} events, {expected} runs")

    if args.silences:
        res["silences"] = silence_rates(args, work, events_path, rules_dir, events, res)

    log(f"opsmedic: in-memory replay of {n} events (no store, noop action, in process)")
    mem = opsmedic_memory(work / "ops-memory", events_path, rules_dir)
    res["opsmedic_memory_events_per_s"] = rounded(n / mem["seconds"])
    if mem["finished"] != {"succeeded": expected}:
        _mismatch(res, f"opsmedic in-memory replay finished {mem['finished']}, expected {expected}")

    log(f"opsmedic: latency run ({args.rate:.0f} events/s for {args.latency_s:.0f} s)")
    res.update(opsmedic_latency(work / "ops-latency", rules_dir, events, args.rate, args.latency_s))
    expected_lat = sum(is_hit(e) for e in events[: int(args.rate * args.latency_s)])
    if res["opsmedic_latency_actions"] != expected_lat:
        _mismatch(res, f"opsmedic latency run: {res['opsmedic_latency_actions']} actions, "
                       f"{expected_lat} expected")  # fmt: skip
    return res


def silence_rates(
    args: argparse.Namespace, work: Path, events_path: Path, rules_dir: Path,
    events: list[dict[str, Any]], res: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The durable replay with no silences, with 1,000 that match nothing, with 1,000 of which
    six match 10 % of the events, and with 1,000 case-insensitive ones matching nothing; each
    variant `--silence-rounds` times, interleaved so that a busy neighbour slows all alike,
    and the best of each kept; then one index check per event in process (`index_us`). On a shared
    machine the wall-clock rates swing by ±20 % between runs of the same variant; the CPU
    seconds of the replay process (`cpu_s`, `ratio_cpu`) are what the silences cost."""
    variants: dict[str, Callable[[Path], None] | None] = {
        "none": None,
        "1000": lambda db: seed_silences(db, matching=False),
        "1000_match10": lambda db: seed_silences(db, matching=True),
        "1000_folded": lambda db: seed_silences(db, matching=False, folded=True),
    }
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for round_ in range(args.silence_rounds):
        for name, seed in variants.items():
            log(f"opsmedic: silences {name}, round {round_ + 1}: replay of {len(events)} events")
            proc, counts = opsmedic_replay(work / f"ops-silences-{name}", events_path,
                                           rules_dir, args.timeout, "silences", seed)  # fmt: skip
            _check_ops(proc, f"silences {name}")
            want = expected_runs(events, matching=name == "1000_match10")
            if counts["events"] != len(events) or counts["runs_succeeded"] != want:
                _mismatch(res, f"silences {name}: store holds {counts}, expected {want} runs")
            best[name] = max(best.get(name, 0.0), len(events) / proc.wall_s)
            cpu[name] = min(cpu.get(name, float("inf")), proc.cpu_s)
    return {
        "silences": SILENCES,
        "rounds": args.silence_rounds,
        "rate_none": rounded(best["none"]),
        "rate_1000": rounded(best["1000"]),
        "rate_1000_match10": rounded(best["1000_match10"]),
        "ratio": round(best["1000"] / best["none"], 3),
        "ratio_match10": round(best["1000_match10"] / best["none"], 3),
        "rate_1000_folded": rounded(best["1000_folded"]),
        "ratio_folded": round(best["1000_folded"] / best["none"], 3),
        "cpu_s": {name: rounded(seconds, 2) for name, seconds in cpu.items()},
        "ratio_cpu": round(cpu["none"] / cpu["1000"], 3),
        "ratio_cpu_match10": round(cpu["none"] / cpu["1000_match10"], 3),
        "ratio_cpu_folded": round(cpu["none"] / cpu["1000_folded"], 3),
        "index_us": {
            "1000": round(index_us(events), 2),
            "1000_match10": round(index_us(events, matching=True), 2),
            "1000_folded": round(index_us(events, folded=True), 2),
        },
    }


def _check_ops(proc: ProcResult, what: str) -> None:
    if proc.timed_out or proc.returncode != 0:
        tail = proc.stderr()[-2000:] or proc.stdout()[-2000:]
        raise SystemExit(f"opsmedic {what} replay failed (rc={proc.returncode}, "
                         f"timed_out={proc.timed_out}):\n{tail}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=200_000, help="workload size N (default 200000)")
    p.add_argument("--peer-events", type=int, default=None,
                   help="events in ansible-rulebook's timed run (default N): the first M of the "
                        "same file, for when N would not fit in --timeout")  # fmt: skip
    p.add_argument(
        "--check-events",
        type=int,
        default=2_000,
        help="events in the peer's correctness run (debug action), default 2000",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run (default 900)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--rate", type=float, default=1000.0, help="latency runs: events/s offered")
    p.add_argument("--latency-s", type=float, default=10.0, help="latency runs: seconds")
    p.add_argument("--peer-venv", type=Path, default=REPO / ".bench" / "rulebook-venv")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--skip-opsmedic", action="store_true")
    p.add_argument("--suppressed-events", type=int, default=50_000,
                   help="events of the 90 %%-suppressed workload (default 50000)")  # fmt: skip
    p.add_argument("--skip-suppressed", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    p.add_argument("--silences", action=argparse.BooleanOptionalAction, default=True,
                   help="also replay with 1,000 silences (the \"silences\" key)")  # fmt: skip
    p.add_argument("--silence-rounds", type=int, default=2, help="replays per silence variant")
    args = p.parse_args(argv)
    args.peer_events = args.events if args.peer_events is None else args.peer_events

    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-engine-"))
    try:
        t0 = time.perf_counter()
        rules = make_rules()
        events = make_events(args.events, args.seed)
        events_path = work / "events.jsonl"
        write_events(events_path, events)
        rules_dir = work / "rules"
        rules_dir.mkdir()
        (rules_dir / "bench.yaml").write_text(opsmedic_rules_yaml(rules))
        hits = sum(is_hit(e) for e in events)
        log(f"workload: {len(events)} events ({hits} hits), {len(rules)} rules, seed {args.seed},"
            f" {time.perf_counter() - t0:.1f} s to generate; work dir {work}")  # fmt: skip

        result: dict[str, Any] = {"events": args.events}
        mismatches: list[str] = []
        if not args.skip_peer:
            peer = run_peer(args, work, events_path, rules, events)
            mismatches += peer.pop("mismatches", [])
            result.update(peer)
        if not args.skip_opsmedic:
            ops = run_opsmedic(args, work, events_path, rules_dir, events)
            mismatches += ops.pop("mismatches", [])
            result.update(ops)
        if not args.skip_suppressed:
            sup = suppressed_figures(work, args.suppressed_events)
            mismatches += sup.pop("mismatches", [])
            result["suppressed"] = sup
    finally:
        if args.keep:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    ops_rate, peer_rate = result.get("opsmedic_events_per_s"), result.get("peer_events_per_s")
    result["ratio"] = round(ops_rate / peer_rate, 2) if ops_rate and peer_rate else None
    mem_rate = result.get("opsmedic_memory_events_per_s")
    result["ratio_memory"] = round(mem_rate / peer_rate, 2) if mem_rate and peer_rate else None
    result.update({
        "rules": len(rules), "hits": hits, "seed": args.seed, "latency_rate": args.rate,
        "checks_ok": not mismatches, "mismatches": mismatches,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
    })  # fmt: skip
    first = ("events", "opsmedic_events_per_s", "peer_events_per_s", "ratio",
             "opsmedic_peak_rss_mib")  # fmt: skip
    print(json.dumps({**{k: result.pop(k, None) for k in first}, **result}))
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())
