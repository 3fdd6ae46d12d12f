"""Server time and bytes of the dashboard's pages over a big store, beside the JSON API's
reads of the same things: one JSON object as the last line (never asserted in tests).

    .venv/bin/python bench/ui.py --events 10000 --incidents 100

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

from opsmedic.metrics import Metrics
from opsmedic.runtime import api_app, build, build_registry
from opsmedic.store import schema as s
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


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    (tmp / "rules").mkdir()
    config = tmp / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp / 'opsmedic.db'}",
                                      "rules_dir": "rules", "api": {"port": 0}}))  # fmt: skip
    rt = build(config, registry=build_registry())
    assert rt.store is not None
    incident = fill(rt.store, args.events, args.runs, args.incidents, 7, time.time())
    with rt.store._engine.begin() as conn:  # the filler resolves them; the Now page wants open
        conn.execute(s.incidents.update().values(status="open", resolved_at=None))
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
                "incident": f"/ui/incidents/{incident}"}  # fmt: skip
        run = rt.store.list_runs(limit=1)[0].id
        urls |= {"runs": "/ui/runs", "runs_failed": "/ui/runs?state=failed&action=run_command",
                 "run": f"/ui/runs/{run}", "approvals": "/ui/approvals"}  # fmt: skip
        pages = {name: await _measure(ui, url, args.rounds) for name, url in urls.items()}
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 headers=headers) as api:  # fmt: skip
        reads = {"incidents": "/api/v1/incidents?status=open&limit=100",
                 "runs": "/api/v1/runs?limit=500",
                 "incident": f"/api/v1/incidents/{incident}"}  # fmt: skip
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
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(_run(args, Path(tmp)))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
