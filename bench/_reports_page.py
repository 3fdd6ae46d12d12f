"""Part of bench/reports.py: time-to-page, from an error spike in a live service to the page.

A tiny HTTP service on loopback answers 200 to every request, or 500 from the moment the bench
switches it (the spike: every request fails), and counts its answers on /metrics
(`http_requests_total{code}`, both codes exported from the start, as instrumentation
libraries do). A load generator sends it LOAD_RPS requests a second. Watching it, side by
side, in the same trial:

- `opsmedic run` with an http probe on it (interval PROBE_INTERVAL, the docs' example) and an
  availability SLO of 99.9 % on the probe's readings; measured until the `slo_burn` event of
  severity `page` is stored (its own `time`, the moment opsmedic emitted it);
- Prometheus 2.42 scraping the service and evaluating Sloth-style rules (recording rules
  `slo:sli_error:ratio_rate{5m,30m,1h,6h}` and the multi-window page alert: 14.4x over 1h and
  5m, or 6x over 6h and 30m), with Debian's packaged intervals (scrape and evaluation 15 s,
  /etc/prometheus/prometheus.yml), sending to Alertmanager 0.25 with Debian's packaged route
  timing (group_wait 30 s, group_interval 5m), which posts to a webhook receiver here:
  measured until that webhook arrives.

Each trial starts everything afresh (a burn stays in the 1h window for an hour), runs healthy
for the warm-up (enough probe readings for opsmedic's min_requests) plus a random part of a
scrape interval, then switches the spike on.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from _proc import log
from idle import start, stop

from services import free_port, wait_ready  # the tests' (reports.py puts tests/ on sys.path)

HOST = "127.0.0.1"
PROBE_INTERVAL = "10s"
LOAD_RPS = 10
OBJECTIVE = 99.9
SCRAPE_INTERVAL = EVALUATION_INTERVAL = "15s"  # Debian's /etc/prometheus/prometheus.yml
GROUP_WAIT, GROUP_INTERVAL = "30s", "5m"  # Debian's /etc/prometheus/alertmanager.yml
TIERS = (("5m", "1h", 14.4), ("30m", "6h", 6.0))  # the page tiers, as opsmedic's
PROGRAMS = {"prometheus": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager"}


def missing() -> str | None:
    """What is not installed for this part (None: all is)."""
    for program, package in PROGRAMS.items():
        if shutil.which(program) is None:
            return f"{program} not installed (apt-get install {package})"
    return None


class Service:
    """The watched service: 200, or 500 while `failing`; /metrics counts its answers."""

    def __init__(self) -> None:
        self.failing = False
        self.counts = {"200": 0, "500": 0}
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    with service._lock:
                        lines = [f'http_requests_total{{code="{c}"}} {n}'
                                 for c, n in service.counts.items()]  # fmt: skip
                    body = "# TYPE http_requests_total counter\n" + "\n".join(lines) + "\n"
                    self._answer(200, body.encode())
                    return
                code = 500 if service.failing else 200
                with service._lock:
                    service.counts[str(code)] += 1
                self._answer(code, b"ok\n" if code == 200 else b"error\n")

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"


class Receiver:
    """Alertmanager's webhook receiver: the arrival time of the first firing notification."""

    def __init__(self) -> None:
        self.first_firing: float | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body.get("status") == "firing" and receiver.first_firing is None:
                    receiver.first_firing = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/alert"


@contextmanager
def serving(*servers: ThreadingHTTPServer) -> Iterator[None]:
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def _load(url: str, done: threading.Event) -> None:
    """LOAD_RPS requests a second on an absolute schedule, until `done`."""
    next_at = time.monotonic()
    while not done.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2):
                pass
        except OSError:
            pass  # a 500 raises HTTPError: counted by the service, nothing to do here
        next_at += 1 / LOAD_RPS
        time.sleep(max(0.0, next_at - time.monotonic()))


def _rules() -> dict[str, Any]:
    """Sloth-style recording rules and the multi-window, multi-burn-rate page alert."""
    labels = {"sloth_id": "svc-up", "sloth_service": "svc", "sloth_slo": "up"}
    windows = sorted({w for tier in TIERS for w in tier[:2]}, key=lambda w: (w[-1], int(w[:-1])))
    records = [{"record": f"slo:sli_error:ratio_rate{w}",
                "expr": f'(sum(rate(http_requests_total{{code=~"(5..)"}}[{w}])))\n'
                        f"/\n(sum(rate(http_requests_total[{w}])))",
                "labels": {**labels, "sloth_window": w}} for w in windows]  # fmt: skip
    allowed = round(1 - OBJECTIVE / 100, 12)
    sel = '{sloth_id="svc-up", sloth_service="svc", sloth_slo="up"}'
    tiers = [f"(max(slo:sli_error:ratio_rate{short}{sel} > ({burn} * {allowed})) without "
             f"(sloth_window)\nand\nmax(slo:sli_error:ratio_rate{long}{sel} > ({burn} * "
             f"{allowed})) without (sloth_window))" for short, long, burn in TIERS]  # fmt: skip
    alert = {"alert": "SvcUpHighErrorRate", "expr": "\nor\n".join(tiers),
             "labels": {"sloth_severity": "page", "severity": "page"}}  # fmt: skip
    return {"groups": [{"name": "sloth-slo-sli-recordings-svc-up", "rules": records},
                       {"name": "sloth-slo-alerts-svc-up", "rules": [alert]}]}  # fmt: skip


def _opsmedic_page(db: Path) -> float | None:
    """When opsmedic stored its first firing page of the SLO, if it has."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute(
                "SELECT min(time) FROM events WHERE source = 'opsmedic' AND kind = 'slo_burn'"
                " AND severity = 'page' AND status = 'firing'"
            ).fetchone()
    except sqlite3.Error:
        return None  # not yet created or migrated
    return None if row is None else row[0]


def trial(work: Path, opsmedic: str, warmup_s: float, timeout_s: float,
          rng: random.Random) -> dict[str, float | None]:  # fmt: skip
    """One spike: seconds from its start to opsmedic's page and to Alertmanager's webhook."""
    work = work.resolve()  # the programs run in it: paths in their configs must not be relative
    (work / "rules").mkdir(parents=True)  # none: the page is the event itself
    service, receiver = Service(), Receiver()
    am_port, prom_port = free_port(), free_port()
    (work / "opsmedic.yaml").write_text(yaml.safe_dump({
        "store": f"sqlite:///{work / 'opsmedic.db'}", "api": {"enabled": False},
        "probes": [{"name": "svc", "type": "http", "interval": PROBE_INTERVAL,
                    "params": {"url": service.url + "/"}}],
        "slos": [{"name": "svc-up", "service": "svc", "sli": {"availability": {"probe": "svc"}},
                  "objective": OBJECTIVE}],
    }, sort_keys=False))  # fmt: skip
    (work / "rules.yml").write_text(yaml.safe_dump(_rules(), sort_keys=False))
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": SCRAPE_INTERVAL,
                   "evaluation_interval": EVALUATION_INTERVAL},
        "rule_files": [str(work / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{HOST}:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "svc", "static_configs": [
            {"targets": [service.url.removeprefix("http://")]}]}],
    }, sort_keys=False))  # fmt: skip
    (work / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "bench", "group_by": ["alertname"], "group_wait": GROUP_WAIT,
                  "group_interval": GROUP_INTERVAL, "repeat_interval": "3h"},
        "receivers": [{"name": "bench", "webhook_configs": [{"url": receiver.url}]}],
    }))  # fmt: skip
    done = threading.Event()
    procs = []
    with serving(service.server, receiver.server):
        try:
            procs.append(start(["prometheus-alertmanager",
                                f"--config.file={work / 'alertmanager.yml'}",
                                f"--storage.path={work / 'am'}",
                                f"--web.listen-address={HOST}:{am_port}",
                                "--cluster.listen-address="], work, "alertmanager"))  # fmt: skip
            procs.append(start(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                                f"--storage.tsdb.path={work / 'tsdb'}",
                                f"--web.listen-address={HOST}:{prom_port}"],
                               work, "prometheus"))  # fmt: skip
            wait_ready(f"http://{HOST}:{am_port}/-/ready", time.monotonic() + 60)
            wait_ready(f"http://{HOST}:{prom_port}/-/ready", time.monotonic() + 60)
            procs.append(start([opsmedic, "run", "-c", str(work / "opsmedic.yaml")], work,
                               "opsmedic"))  # fmt: skip
            threading.Thread(target=_load, args=(service.url + "/", done), daemon=True).start()
            time.sleep(warmup_s + rng.uniform(0, 15))  # any phase of the scrape and probe
            spike = time.time()
            service.failing = True
            log(f"spike on at {spike:.1f}")
            ours: float | None = None
            while time.time() - spike < timeout_s:
                ours = ours or _opsmedic_page(work / "opsmedic.db")
                if ours is not None and receiver.first_firing is not None:
                    break
                time.sleep(0.1)
        finally:
            done.set()
            for proc in reversed(procs):
                stop(proc)
    theirs = receiver.first_firing
    return {"opsmedic": None if ours is None else round(ours - spike, 2),
            "prometheus": None if theirs is None else round(theirs - spike, 2)}  # fmt: skip
