"""Benchmark: from a bad canary's first 500 to every request answered by the good version.

The seed's URL shortener on loopback: v1 (`json.load`, 200s) and v2 (`json.loads`, a 500 on
every request), each its own server (`python -m opsmedic.cli.demo.shortener serve`). A client
sends GET / at a fixed rate over 8 keep-alive connections (paced from the start), recording
per request its send time, status and the backend that answered (the balancer's X-Backend).

- **opsmedic**: Debian's nginx in front, v1 alone; `opsmedic deploy shortener v2` with
  `strategy: canary` (33 %, the nginx router) while the client runs; the early abort and the
  rollback put v1 back (nginx reloaded twice).
- **HAProxy** (Debian's, installed when missing): 67/33, `check observe layer7 error-limit 10
  on-error mark-down` and `option httpchk GET /`; v2 goes live from maintenance over the
  runtime API (`set server shortener/v2 state ready`, no reload). It hides v2; nothing
  rolls back.
- **Flagger, computed** from the same measurements (labelled so): rollback after
  `interval x threshold`; failed share = canary weight x v2's error ratio over that time.

Per trial: `restored_s` (v2's first 500 → the first request after which v1 alone answered,
for ≥ 1 s and to the end of the window) and the failed share of the requests sent in the
window (v2 going live + `--window`). Budget: failed requests / rate, in minutes of full
outage, against the seed's 15 minutes a year. Last line of stdout: JSON.

    .venv/bin/python bench/rollback.py [--trials 20] [--rate 200] [--window 10] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _proc import log, percentile, rounded  # noqa: E402
from _rollback_client import Client, Trial, analyse  # noqa: E402
from _rollback_rig import (  # noqa: E402
    UPSTREAM,
    Backends,
    Nginx,
    backends,
    haproxy,
    haproxy_down_reasons,
    haproxy_program,
    haproxy_version,
    nginx,
    nginx_version,
    runtime_api,
)  # fmt: skip
from idle import start, stop  # noqa: E402

REPO = HERE.parent
OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
WARMUP_S = 1.0  # v1 alone before v2 goes live
TRIAL_TIMEOUT_S = 60.0
BUDGET_MIN = 15.0  # the seed's SLA: 15 minutes of outage a year
FLAGGER = {"flagger_1m_x5": (60.0, 5), "flagger_1m_x1": (60.0, 1)}  # interval s, threshold
FLAGGER_FORMULA = ("computed, not measured: rollback after interval x threshold; failed share = "
                   "canary weight x v2 error ratio (both measured here); failed requests = "
                   "rate x rollback time x failed share")  # fmt: skip


def opsmedic_config(work: Path, site: Nginx, pair: Backends) -> Path:
    (work / "rules").mkdir()
    config = work / "opsmedic.yaml"
    config.write_text(f"""store: sqlite:///{work / "opsmedic.db"}
api: {{enabled: false}}
services:
  shortener:
    versions: {pair.root / "versions"}
    strategy: canary
    bake: 1s
    switch:                       # each version runs its own server: the router is the switch
      - run_command: {{argv: ["true"]}}
    canary:
      router:
        nginx:
          upstream: {UPSTREAM}
          include: {site.include}
          access_log: {site.access_log}
          prefix: {site.prefix}
          conf: {site.conf}
          pid_file: {site.pid_file}
          program: {site.program}
          error_log: {site.error_log}
      backends: {{v1: "{pair.v1}", v2: "{pair.v2}"}}
      steps: [33]
      analysis: {{interval: 30s, on_no_data: hold}}
""")
    return config


def first_deploy(config: Path, work: Path) -> None:
    """v1 as a first deployment (all traffic at once, nothing to compare): last known good."""
    proc = start([OPSMEDIC, "deploy", "shortener", "v1", "-c", str(config), "--json"],
                 work, "deploy-v1")  # fmt: skip
    proc.wait(TRIAL_TIMEOUT_S)
    if deploy_record(work, "deploy-v1").get("state") != "promoted":
        raise SystemExit(f"v1 was not promoted: {(work / 'deploy-v1.stderr.txt').read_text()}")


def deploy_record(work: Path, tag: str) -> dict[str, Any]:
    """The deployment `opsmedic deploy --json` printed."""
    text = (work / f"{tag}.stdout.txt").read_text()
    try:
        found: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        stderr = (work / f"{tag}.stderr.txt").read_text()[-2000:]
        raise SystemExit(f"{tag}: no deployment printed: {text[-500:]!r} {stderr}") from None
    return found


def run_window(client: Client, v2: str, window_s: float, done: Callable[[], bool]) -> None:
    """Until `window_s` after v2's first answer (and `done()`), at most TRIAL_TIMEOUT_S."""
    deadline = time.monotonic() + TRIAL_TIMEOUT_S
    live: float | None = None
    while time.monotonic() < deadline:
        if live is None:
            live = client.first_sent_by(v2)
        elif time.monotonic() > live + window_s + 0.2 and done():
            return
        time.sleep(0.05)
    log(f"trial cut at {TRIAL_TIMEOUT_S:g}s (v2 went live: {live is not None})")


def opsmedic_trial(
    n: int, args: argparse.Namespace, work: Path, site: Nginx, pair: Backends, config: Path
) -> tuple[Trial | None, dict[str, Any]]:
    client = Client(site.port, args.rate, limit=int(args.rate * TRIAL_TIMEOUT_S))
    client.start()
    time.sleep(WARMUP_S)
    tag = f"deploy-v2-{n}"
    proc = start([OPSMEDIC, "deploy", "shortener", "v2", "-c", str(config), "--json"], work, tag)
    try:
        run_window(client, pair.v2, args.window, lambda: proc.poll() is not None)
    finally:
        answers = client.stop()
        stop(proc)
    record = deploy_record(work, tag)
    step = (record.get("checks", {}).get("canary", {}).get("steps") or [{}])[0]
    facts = {"state": record.get("state"), "reason": record.get("reason"),
             "early_abort": step.get("early_abort"),
             "deploy_s": rounded(record["finished_at"] - record["created_at"], 3)
             if record.get("finished_at") else None}  # fmt: skip
    return analyse(answers, pair.v1, pair.v2, args.window), facts


def haproxy_trial(
    args: argparse.Namespace, work: Path, program: str, pair: Backends
) -> tuple[Trial | None, dict[str, Any]]:
    with haproxy(work, program, pair) as (port, sock):
        client = Client(port, args.rate, limit=int(args.rate * TRIAL_TIMEOUT_S))
        client.start()
        try:
            time.sleep(WARMUP_S)
            runtime_api(sock, f"set server {UPSTREAM}/v2 state ready")
            run_window(client, "v2", args.window, lambda: True)
        finally:
            answers = client.stop()
    return analyse(answers, "v1", "v2", args.window), {"down": haproxy_down_reasons(work)}


def side(trials: list[Trial], window_s: float, rate: float) -> dict[str, Any]:
    """p50/p95 of restored_s (a trial never restored counts as the whole window), the mean
    failed share, and the budget each release costs."""
    restored = [t.restored_s if t.restored_s is not None else window_s for t in trials]
    quiet = [t.first_quiet_s if t.first_quiet_s is not None else window_s for t in trials]
    outage_min = [t.failed / rate / 60 for t in trials]
    return {
        "p50_s": rounded(percentile(restored, 50), 3),
        "p95_s": rounded(percentile(restored, 95), 3), "max_s": rounded(max(restored), 3),
        "never_restored": sum(t.restored_s is None for t in trials),
        "first_quiet_p50_s": rounded(percentile(quiet, 50), 3),
        "first_quiet_p95_s": rounded(percentile(quiet, 95), 3),
        "failed_share": rounded(sum(t.failed for t in trials) / sum(t.requests for t in trials), 5),
        "failed_requests_p50": percentile([float(t.failed) for t in trials], 50),
        "failed_requests_max": max(t.failed for t in trials),
        "budget_minutes_p50": rounded(percentile(outage_min, 50), 5),
        "budget_minutes_p95": rounded(percentile(outage_min, 95), 5),
        "budget_share_p95": rounded(percentile(outage_min, 95) / BUDGET_MIN, 6),
        "resent_after_close": sum(t.resent for t in trials),
    }  # fmt: skip


def flagger(trials: list[Trial], rate: float) -> dict[str, Any]:
    """Flagger's rule on the measured canary weight and v2 error ratio (FLAGGER_FORMULA)."""
    weight = sum(t.canary_share for t in trials) / len(trials)
    v2_errors = sum(t.v2_errors for t in trials) / max(1, sum(t.v2_requests for t in trials))
    share = weight * v2_errors
    out: dict[str, Any] = {"formula": FLAGGER_FORMULA, "canary_weight": rounded(weight, 4),
                           "v2_error_ratio": rounded(v2_errors, 4)}  # fmt: skip
    for name, (interval, threshold) in FLAGGER.items():
        rollback_s = interval * threshold
        minutes = rollback_s * share / 60  # rate x time x share requests, / rate
        out[name] = {
            "interval_s": interval, "threshold": threshold, "p50_s": rollback_s,
            "p95_s": rollback_s, "failed_share": rounded(share, 5),
            "failed_requests": round(rate * rollback_s * share),
            "budget_minutes": rounded(minutes, 4), "budget_share": rounded(minutes / BUDGET_MIN, 5),
        }  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (≥ 200)")
    parser.add_argument("--window", type=float, default=10.0, help="s after v2 goes live")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.trials < 1 or args.rate <= 0 or args.window <= 2:
        parser.error("--trials ≥ 1, --rate > 0, --window > 2 s")
    program = None if args.skip_peer else haproxy_program()
    (REPO / ".bench").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-rollback-", dir=REPO / ".bench"))
    results: dict[str, list[Trial]] = {"opsmedic": [], "haproxy": []}
    raw: dict[str, list[dict[str, Any]]] = {"opsmedic": [], "haproxy": []}
    try:
        with backends(work) as pair, nginx(work, pair) as site:
            config = opsmedic_config(work, site, pair)
            first_deploy(config, work)
            versions = {"nginx": nginx_version(site.program)}
            for n in range(args.trials):
                trial, facts = opsmedic_trial(n, args, work, site, pair, config)
                record(results, raw, "opsmedic", n, trial, facts)
                if program is not None:
                    peer_work = work / f"haproxy-{n}"
                    peer_work.mkdir()
                    trial, facts = haproxy_trial(args, peer_work, program, pair)
                    record(results, raw, "haproxy", n, trial, facts)
            if program is not None:
                versions["haproxy"] = haproxy_version(program)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary(args, results, raw, versions)))
    return 0


def record(
    results: dict[str, list[Trial]], raw: dict[str, list[dict[str, Any]]], name: str, n: int,
    trial: Trial | None, facts: dict[str, Any],
) -> None:  # fmt: skip
    if trial is None:
        log(f"trial {n} {name}: v2 never answered ({facts})")
        raw[name].append({"trial": n, "went_live": False, **facts})
        return
    results[name].append(trial)
    raw[name].append({"trial": n, "restored_s": rounded(trial.restored_s, 3),
                      "first_quiet_s": rounded(trial.first_quiet_s, 3), "failed": trial.failed,
                      "requests": trial.requests, "v2_requests": trial.v2_requests,
                      "resent": trial.resent, **facts})  # fmt: skip
    log(f"trial {n} {name}: restored {trial.restored_s} s after v2's first 500, "
        f"{trial.failed}/{trial.requests} failed ({facts})")  # fmt: skip


def summary(
    args: argparse.Namespace, results: dict[str, list[Trial]],
    raw: dict[str, list[dict[str, Any]]], versions: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    ours = side(results["opsmedic"], args.window, args.rate) if results["opsmedic"] else None
    out: dict[str, Any] = {
        "bench": "rollback", "trials": args.trials, "rate": args.rate, "window_s": args.window,
        "versions": versions, "opsmedic": ours,
    }  # fmt: skip
    peer = side(results["haproxy"], args.window, args.rate) if results["haproxy"] else None
    out["haproxy"] = peer
    measured = results["opsmedic"] + results["haproxy"]
    flag = flagger(measured, args.rate) if measured else None
    out["flagger_computed"] = flag and {"p95_s": flag["flagger_1m_x5"]["p95_s"],
                                        "failed_share": flag["flagger_1m_x5"]["failed_share"],
                                        **flag}  # fmt: skip
    out["budget_share_per_release"] = {
        "opsmedic": ours and ours["budget_share_p95"],
        "haproxy": peer and peer["budget_share_p95"],
        **({k: flag[k]["budget_share"] for k in FLAGGER} if flag else {}),
    }
    if ours is not None:
        out["goals"] = {
            "p95_le_3s": ours["p95_s"] <= 3.0,
            "failed_share_le_2x_haproxy": None if peer is None
            else ours["failed_share"] <= 2 * peer["failed_share"],
            "budget_share_le_0.5pct": ours["budget_share_p95"] <= 0.005,
        }  # fmt: skip
    out["raw"] = raw
    return out


if __name__ == "__main__":
    raise SystemExit(main())
