"""Server time and bytes of the dashboard's pages over a big store, beside the JSON API's
reads of the same things: one JSON object as the last line (never asserted in tests).

    .venv/bin/python bench/ui.py --events 10000 --incidents 100 --deployments 1000 --flags 200

In process (httpx's ASGI transport into the app `opsmedic run` serves): the time is the
server's, framework included, without a network. Incidents are left open so the Now page
lists them; runs are spread over them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from opsmedic.tokens import Scope, digest, mint


async def _measure(client: httpx.AsyncClient, url: str, rounds: int) -> dict[str, float]:
    took, size = [], 0
    for _ in range(rounds):
        began = time.perf_counter()
        reply = await client.get(url)
        took.append((time.perf_counter() - began) * 1000)
        assert reply.status_code == 200, (url, reply.status_code, reply.text[:300])
        size = len(reply.content)
    took.sort()
    return {"p50_ms": round(statistics.median(took), 2),
            "p95_ms": round(took[int(0.95 * (len(took) - 1))], 2), "bytes": size}  # fmt: skip


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


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    (tmp / "rules").mkdir()
    # The filler's 30 rule names, each with a throttle and a limit: the Rules page's last runs.
    (tmp / "rules" / "bench.yaml").write_text(yaml.safe_dump([
        {"name": f"rule-{n}", "when": {"source": f"bench-{n}"}, "do": ["noop"],
         "throttle": {"once_within": "10m"}, "limit": {"max_runs": 3, "within": "1h"}}
        for n in range(30)]))  # fmt: skip
    config = tmp / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp / 'opsmedic.db'}",
                                      "rules_dir": "rules", "api": {"port": 0}}))  # fmt: skip
    rt = build(config, registry=build_registry())
    assert rt.store is not None
    incident = fill(rt.store, args.events, args.runs, args.incidents, 7, time.time())
    with rt.store._engine.begin() as conn:  # the filler resolves them; the Now page wants open
        conn.execute(s.incidents.update().values(status="open", resolved_at=None))
    deployment = _releases(rt.store, args.deployments, args.flags, time.time())
    record, secret = mint("bench", [Scope.READ], 0.0)
    rt.store.add_token(record, digest(secret))
    app = api_app(rt, Metrics())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as ui:
        form = await ui.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await ui.post("/ui/signin", data={"token": secret, "csrf": csrf.group(1)})
        urls = {"now": "/ui/", "now_fragment": "/ui/now/fragment",
                "incident": f"/ui/incidents/{incident}", "rules": "/ui/rules",
                "deployments": "/ui/deployments",
                "deployment": f"/ui/deployments/{deployment}", "flags": "/ui/flags",
                "flag": "/ui/flags/flag0"}  # fmt: skip
        run = rt.store.list_runs(limit=1)[0].id
        urls |= {"runs": "/ui/runs", "runs_failed": "/ui/runs?state=failed&action=run_command",
                 "run": f"/ui/runs/{run}", "approvals": "/ui/approvals"}  # fmt: skip
        pages = {name: await _measure(ui, url, args.rounds) for name, url in urls.items()}
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 headers=headers) as api:  # fmt: skip
        reads = {"incidents": "/api/v1/incidents?status=open&limit=100",
                 "runs": "/api/v1/runs?limit=500",
                 "incident": f"/api/v1/incidents/{incident}", "rules": "/api/v1/rules",
                 "deployments": "/api/v1/deployments?limit=100",
                 "flags": "/api/v1/flags"}  # fmt: skip
        api_figures = {n: {"p95_ms": (await _measure(api, u, args.rounds))["p95_ms"]}
                       for n, u in reads.items()}  # fmt: skip
    rt.store.close()
    return {"events": args.events, "incidents": args.incidents, "runs": args.runs,
            "pages": pages, "first_paint_ms": None, "api": api_figures}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--deployments", type=int, default=1_000)
    parser.add_argument("--flags", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(_run(args, Path(tmp)))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
