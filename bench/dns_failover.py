"""Benchmark: from the primary DNS server going silent to the switch being done, default settings.

Two real `named` (BIND 9, from tests/services_dns.py) on loopback addresses; the secondary
is authoritative for `svc.test.`, whose `resolver.svc.test. A` names the primary.

- **opsmedic**: `opsmedic run` with a `dns` probe at its defaults (every 1 s, no jitter,
  timeout 1 s, fall 2) on the primary and a rule that, on `transition: down`, repoints the
  record at the secondary with `dns_failover`'s rfc2136 backend (TSIG, compare-and-swap).
  Done = the record on the authoritative server names the secondary (polled every 5 ms).
- **dnsdist 1.7** (Debian's; the peer REFERENCE §2.5 lists) in front of the same two
  servers, health checks at the same settings (`checkInterval=1`, `checkTimeout=1000`,
  `maxCheckFailures=2`, `firstAvailable`). Done = a query through dnsdist is answered by
  the secondary.

Each trial starts the system fresh, waits for a first healthy reading, waits a random
phase of the 1 s cycle, then silences the primary with SIGSTOP (a black hole: the port
stays open, nothing answers). Last line of stdout: JSON with p50, p95 and max for each.

    .venv/bin/python bench/dns_failover.py [--trials 20] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _proc import log, percentile, rounded  # noqa: E402
from idle import start, stop  # noqa: E402

from services_dns import DnsPair, running_pair  # noqa: E402

REPO = HERE.parent
OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
RECORD = "resolver.svc.test."
TRIAL_TIMEOUT_S = 30.0


def opsmedic_world(work: Path, pair: DnsPair) -> Path:
    p, s = pair.primary.address, pair.secondary.address
    (work / "rules").mkdir()
    (work / "rules" / "dns.yaml").write_text(yaml.safe_dump([{
        "name": "dns-failover",
        "when": {"source": "dns", "kind": "primary-dns", "labels.transition": "down"},
        "do": [{"dns_failover": {"direction": "failover", "rfc2136": {
            "server": s, "zone": "svc.test.", "name": RECORD, "primary": p, "secondary": s,
            "tsig_key": pair.key_name}}}],
    }], sort_keys=False))  # fmt: skip
    config = work / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{work / 'opsmedic.db'}",
        "rules_dir": "rules",
        "tsig_keys": {pair.key_name: {"secret": {"file": str(pair.key_file)}}},
        # Every probe setting at its default: interval 1 s, jitter 0, timeout 1 s, fall 2.
        "probes": [{"name": "primary-dns", "type": "dns",
                    "params": {"server": p, "name": "health.example.test",
                               "expect": ["192.0.2.53"]}}],
    }, sort_keys=False))  # fmt: skip
    return config


def until(check: Callable[[], bool], what: str, poll: float = 0.005) -> float:
    deadline = time.monotonic() + TRIAL_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(poll)
    return time.monotonic()


def has_reading(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return bool(conn.execute("select 1 from events where source = 'dns'").fetchone())
    except sqlite3.Error:
        return False  # not created yet


def opsmedic_trial(pair: DnsPair, work: Path, phase: float) -> float:
    config = opsmedic_world(work, pair)
    proc = start([OPSMEDIC, "run", "-c", str(config)], work, "opsmedic")
    try:
        until(lambda: has_reading(work / "opsmedic.db"), "a first reading", poll=0.05)
        time.sleep(phase)
        silenced = time.monotonic()
        pair.primary.pause()
        done = until(
            lambda: pair.lookup(RECORD, "A", pair.secondary) == [pair.secondary.address],
            "the record to name the secondary",
        )
    finally:
        stop(proc)
    return done - silenced


def dnsdist_conf(pair: DnsPair, port: int) -> str:
    check = ("checkInterval=1, checkTimeout=1000, maxCheckFailures=2, rise=1, "
             "checkName='health.example.test.'")  # fmt: skip
    return "\n".join([
        f"setLocal('127.0.0.1:{port}')",
        f"newServer({{address='{pair.primary.address}:53', order=1, {check}}})",
        f"newServer({{address='{pair.secondary.address}:53', order=2, {check}}})",
        "setServerPolicy(firstAvailable)",
    ]) + "\n"  # fmt: skip


def answered_by(port: int) -> str | None:
    """The address `ns.example.test` resolves to through dnsdist (each server names itself)."""
    query = dns.message.make_query("ns.example.test.", "A")
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.05)
    except (dns.exception.Timeout, OSError):
        return None
    return next((r.to_text() for rrset in reply.answer for r in rrset), None)


def dnsdist_trial(pair: DnsPair, work: Path, phase: float) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    conf = work / "dnsdist.conf"
    conf.write_text(dnsdist_conf(pair, port))
    proc = start([shutil.which("dnsdist") or "dnsdist", "--supervised", "--disable-syslog",
                  "-C", str(conf)], work, "dnsdist")  # fmt: skip
    try:
        until(lambda: answered_by(port) == pair.primary.address, "dnsdist to answer", poll=0.05)
        time.sleep(phase)
        silenced = time.monotonic()
        pair.primary.pause()
        done = until(lambda: answered_by(port) == pair.secondary.address, "dnsdist to switch", 0)
    finally:
        stop(proc)
    return done - silenced


def figures(times: list[float]) -> dict[str, float | None]:
    return {"p50": rounded(percentile(times, 50), 3), "p95": rounded(percentile(times, 95), 3),
            "max": rounded(max(times), 3), "min": rounded(min(times), 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    if not args.skip_peer and shutil.which("dnsdist") is None:
        raise SystemExit("dnsdist is not installed: apt-get install dnsdist (or --skip-peer)")
    (REPO / ".bench").mkdir(exist_ok=True)
    rng = random.Random(args.seed)
    results: dict[str, list[float]] = {"opsmedic": [], "dnsdist": []}
    trials = {"opsmedic": opsmedic_trial, "dnsdist": dnsdist_trial}
    if args.skip_peer:
        del trials["dnsdist"]
    with running_pair() as pair:
        for trial in range(args.trials):
            phase = rng.uniform(0.0, 1.0)  # any moment of the 1 s probe cycle
            for name, run in trials.items():
                work = Path(tempfile.mkdtemp(prefix=f"opsmedic-bench-dns-{name}-",
                                             dir=REPO / ".bench"))  # fmt: skip
                try:
                    pair.reset()
                    took = run(pair, work, phase)
                finally:
                    pair.primary.resume()
                    shutil.rmtree(work, ignore_errors=True)
                results[name].append(took)
                log(f"trial {trial} {name}: switched {took:.3f}s after the primary went silent")
        pair.reset()
    summary: dict[str, object] = {
        "bench": "dns_failover",
        "trials": args.trials,
        "settings": {"interval_s": 1.0, "timeout_s": 1.0, "fall": 2, "jitter": 0.0},
        "opsmedic_s": figures(results["opsmedic"]),
        "goal_p95_s": 3.0,
    }
    if results["dnsdist"]:
        summary["dnsdist_s"] = figures(results["dnsdist"])
        ops, peer = percentile(results["opsmedic"], 95), percentile(results["dnsdist"], 95)
        summary["p95_ratio_dnsdist_over_opsmedic"] = rounded(peer / ops, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
