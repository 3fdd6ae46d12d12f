"""Server time and bytes of the dashboard's pages over a big store, beside the JSON API's
reads of the same things, and first contentful paint in headless Debian chromium: one JSON
object as the last line (never asserted in tests).

    .venv/bin/python bench/ui.py                         # 1,000,000 events, 5,000 incidents
    .venv/bin/python bench/ui.py --events 10000 --incidents 100 --runs 1000 --deployments 1000

Server time is measured in process (httpx's ASGI transport into the app `opsmedic run`
serves): the server's, framework included, without a network. First paint is measured
against a real `opsmedic run` serving the same store on loopback, by Playwright driving
Debian's chromium (`performance` paint timing: request, response, parse, CSS, first text).
Incidents are left open so the Now page lists them; runs are spread over them. Each page is
read `--rounds` times or for `--seconds` seconds, whichever ends first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from _reports_store import build as fill

from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.metrics import Metrics
from opsmedic.model import Deployment, DeploymentState
from opsmedic.runtime import api_app, build, build_registry
from opsmedic.store import schema as s
from opsmedic.store.store import Store
from opsmedic.tokens import Scope

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from served import CHROMIUM, serving, sign_in, tokens  # the browser tests' own `opsmedic run`

# The dashboard's pages (name: path; {incident}, {run} and {deployment} name filled rows); a
# new page is one line here. FRAGMENTS: what pages fetch (the polled part, the SLO chart they
# show as an image): timed, not painted. API: the JSON API's reads of the same information.
PAGES = {"now": "/ui/", "incident": "/ui/incidents/{incident}", "runs": "/ui/runs",
         "runs_failed": "/ui/runs?state=failed&action=run_command", "run": "/ui/runs/{run}",
         "approvals": "/ui/approvals", "rules": "/ui/rules", "deployments": "/ui/deployments",
         "deployment": "/ui/deployments/{deployment}", "flags": "/ui/flags",
         "flag": "/ui/flags/flag0", "slos": "/ui/slos", "silences": "/ui/silences"}  # fmt: skip
FRAGMENTS = {"now_fragment": "/ui/now/fragment", "slo_chart": "/ui/slos/slo0/chart.svg"}
API = {"incidents": "/api/v1/incidents?status=open&limit=100", "runs": "/api/v1/runs?limit=500",
       "incident": "/api/v1/incidents/{incident}", "rules": "/api/v1/rules",
       "deployments": "/api/v1/deployments?limit=100", "flags": "/api/v1/flags",
       "slos": "/api/v1/slos", "silences": "/api/v1/silences"}  # fmt: skip
# performance's paint entry for the first text or image: buffered, so one already past counts.
FCP_JS = """() => new Promise(done => new PerformanceObserver(list => {
  const fcp = list.getEntriesByName('first-contentful-paint')[0]; if (fcp) done(fcp.startTime);
}).observe({type: 'paint', buffered: true}))"""


def _figures(took: list[float], size: int) -> dict[str, float]:
    took.sort()
    return {"p50_ms": round(statistics.median(took), 2),
            "p95_ms": round(took[int(0.95 * (len(took) - 1))], 2), "bytes": size,
            "rounds": len(took)}  # fmt: skip


async def _measure(
    client: httpx.AsyncClient, url: str, args: argparse.Namespace
) -> dict[str, float]:
    took, size = [], 0
    until = time.monotonic() + args.seconds
    while len(took) < args.rounds and (not took or time.monotonic() < until):
        began = time.perf_counter()
        reply = await client.get(url)
        took.append((time.perf_counter() - began) * 1000)
        assert reply.status_code == 200, (url, reply.status_code, reply.text[:300])
        size = len(reply.content)
    return _figures(took, size)


def _releases(store: Store, deployments: int, flags: int, now: float) -> str:
    """Finished canary deployments (three judged steps each, as canary.py records them) and
    flags with a few changes each; the newest deployment's id."""
    step = {"canary_percent": 33, "weights": {"10.0.0.1:80": 67, "10.0.0.2:80": 33},
            "canary": {"requests": 500, "errors": 1, "error_ratio": 0.002, "latency_p95_s": 0.02},
            "stable": {"requests": 1000, "errors": 2, "error_ratio": 0.002, "latency_p95_s": 0.02},
            "early_abort": "too few errors to tell",
            "judgement": {"score": 100.0, "verdict": "pass", "reason": "score 100.0", "metrics": {
                m: {"classification": "Pass", "reason": "", "canary": 500, "stable": 1000,
                    "p_value": 0.4, "shift": 0.0, "lower": 0.0, "upper": 0.0}
                for m in ("error_ratio", "latency")}}}  # fmt: skip
    last = ""
    for i in range(deployments):
        at = now - (deployments - i) * 60
        found = Deployment(service=f"svc{i % 20}", env="production", version=f"v{i}",
                           previous_version=f"v{i - 1}", strategy="canary",
                           requested_by="bench", state=DeploymentState.PROMOTED,
                           checks={"canary": {"steps": [step] * 3}}, created_at=at,
                           updated_at=at + 30, finished_at=at + 30)  # fmt: skip
        store.start_deployment(found)
        last = found.id
    by = Author("cli", "bench")
    for i in range(flags):
        flag = Flag.model_validate({"key": f"flag{i}", "description": "a bench flag"})
        for percentage in (10, 50, 100):
            flag = Flag.model_validate({**flag.model_dump(), "rollout": {"percentage": percentage}})
            store.flags.set(flag, by, now)
    return last


def _slo_samples(store: Store, slos: int, now: float) -> None:
    """Thirty days of per-minute samples for each SLO (about 100 requests a minute, a few
    bad): the SLOs page reads their windows."""
    last = int(now // 60)
    for n in range(slos):
        rows = {(f"slo{n}", m): [100 - (m % 97 == 0), 100, 0]
                for m in range(last - 30 * 1440, last + 1)}  # fmt: skip
        store.slo_samples.add(rows)


async def _in_process(args: argparse.Namespace, config: Path, secret: str, ids: dict[str, str]
                      ) -> tuple[dict[str, object], dict[str, object]]:  # fmt: skip
    rt = build(config, registry=build_registry())
    assert rt.store is not None
    transport = httpx.ASGITransport(app=api_app(rt, Metrics()))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as ui:
        form = await ui.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await ui.post("/ui/signin", data={"token": secret, "csrf": csrf.group(1)})
        pages = {n: await _measure(ui, p.format(**ids), args)
                 for n, p in (PAGES | FRAGMENTS).items()}  # fmt: skip
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 headers=headers) as api:  # fmt: skip
        reads = {n: {"p95_ms": (await _measure(api, u.format(**ids), args))["p95_ms"]}
                 for n, u in API.items()}  # fmt: skip
    rt.store.close()
    return pages, reads


def _first_paint(args: argparse.Namespace, config: Path, secret: str, ids: dict[str, str],
                 log: Path) -> dict[str, float]:  # fmt: skip
    """Median first contentful paint of each page, each load a new tab of a signed-in browser
    (`first_paint_ms` in the figures is the slowest page's)."""
    from playwright.sync_api import sync_playwright

    paints: dict[str, float] = {}
    with serving(config, log) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        sign_in(context.new_page(), url, secret)
        for name, path in PAGES.items():
            took: list[float] = []
            until = time.monotonic() + args.seconds
            while len(took) < args.paint_rounds and (not took or time.monotonic() < until):
                page = context.new_page()
                page.goto(url + path.format(**ids))
                took.append(float(page.evaluate(FCP_JS)))
                page.close()
            paints[name] = round(statistics.median(took), 1)
        browser.close()
    return paints


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--incidents", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=1_000)
    parser.add_argument("--flags", type=int, default=200)
    parser.add_argument("--slos", type=int, default=3, help="each with 30 days of samples")
    parser.add_argument("--rounds", type=int, default=50, help="reads of each page at most")
    parser.add_argument("--paint-rounds", type=int, default=10, help="loads of each page")
    parser.add_argument("--seconds", type=float, default=30, help="at most, per page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        (tmp / "rules").mkdir()
        # The filler's 30 rule names, each with a throttle and a limit: the Rules page's last runs.
        (tmp / "rules" / "bench.yaml").write_text(yaml.safe_dump([
            {"name": f"rule-{n}", "when": {"source": f"bench-{n}"}, "do": ["noop"],
             "throttle": {"once_within": "10m"}, "limit": {"max_runs": 3, "within": "1h"}}
            for n in range(30)]))  # fmt: skip
        store_url = f"sqlite:///{tmp / 'opsmedic.db'}"
        config = tmp / "opsmedic.yaml"
        slos = [{"name": f"slo{n}", "service": f"svc{n}", "objective": 99.9,
                 "sli": {"events": {"total": [f"source=bench-{n}"], "bad": ["severity=critical"]}}}
                for n in range(args.slos)]  # fmt: skip
        config.write_text(yaml.safe_dump({"store": store_url, "rules_dir": "rules", "slos": slos,
                                          "api": {"host": "127.0.0.1", "port": 0}}))  # fmt: skip
        rt = build(config, registry=build_registry())  # migrates the new store
        assert rt.store is not None
        began = time.perf_counter()
        incident = fill(rt.store, args.events, args.runs, args.incidents, 7, time.time())
        with rt.store._engine.begin() as conn:  # the filler resolves them; Now wants them open
            conn.execute(s.incidents.update().values(status="open", resolved_at=None))
        deployment = _releases(rt.store, args.deployments, args.flags, time.time())
        _slo_samples(rt.store, args.slos, time.time())
        run = rt.store.list_runs(limit=1)[0].id
        fill_s = round(time.perf_counter() - began, 1)
        print(f"filled in {fill_s} s", file=sys.stderr)
        rt.store.close()
        secret = tokens(store_url, {"bench": [Scope.READ]})["bench"]
        ids = {"incident": incident, "run": run, "deployment": deployment}
        pages, api = asyncio.run(_in_process(args, config, secret, ids))
        print(f"pages {pages}\napi {api}", file=sys.stderr)
        paints: dict[str, float] = {}
        if os.path.exists(CHROMIUM):
            paints = _first_paint(args, config, secret, ids, tmp / "opsmedic.log")
        else:
            print(f"no first paint: no chromium at {CHROMIUM} (Debian's `chromium`)",
                  file=sys.stderr)  # fmt: skip
    print(json.dumps({"events": args.events, "incidents": args.incidents, "runs": args.runs,
                      "fill_s": fill_s, "pages": pages,
                      "first_paint_ms": max(paints.values(), default=None),
                      "first_paint": paints, "api": api,
                      "load_average": [round(x, 2) for x in os.getloadavg()]}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
