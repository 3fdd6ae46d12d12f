"""SLIs from opsmedic's own probes against a real HTTP service: the seed's `data` < 200 ms and
`info` < 50 ms latency objectives, and availability."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from api_service import running_api
from http_receiver import serving

INFO_DELAY_S = 0.08  # the info endpoint answers no sooner than this: over its 50 ms objective


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/info":
            time.sleep(INFO_DELAY_S)
        status = 500 if self.path == "/down" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    with serving(Handler) as url:
        yield url


async def test_probe_readings_become_latency_and_availability_samples(
    tmp_path: Path, service: str
) -> None:
    probes = [{"name": name, "type": "http", "interval": "200ms", "params": {"url": f"{service}/{name}"}}
              for name in ("data", "info", "down")]  # fmt: skip
    slos = [{"name": "data-latency", "service": "data", "objective": 99.9,
             "sli": {"latency": {"probe": "data", "threshold": "200ms"}}},
            {"name": "info-latency", "service": "info", "objective": 99.9,
             "sli": {"latency": {"probe": "info", "threshold": "50ms"}}},
            {"name": "down-up", "objective": 99, "budgeting": "timeslices", "min_requests": 1000,
             "sli": {"availability": {"probe": "down"}}}]  # fmt: skip
    async with running_api(tmp_path, probes=probes, slos=slos) as api:
        watch = api.service.slos
        assert watch is not None
        for _ in range(300):  # until each probe has read at least three times
            kinds = [e.kind for e in api.store.list_events(source="http", limit=1000)]
            if all(kinds.count(name) >= 3 for name in ("data", "info", "down")):
                break
            await asyncio.sleep(0.1)
        # An ingest token holder posts "readings" of the failing probe: they are not its.
        forged = [{"source": "http", "kind": "down", "resource": f"{service}/down",
                   "status": "resolved", "value": 1.0}] * 50  # fmt: skip
        async with api.client(api.tokens["ingest"]) as client:
            assert (await client.post("/api/v1/events", json=forged)).status_code == 202
        await watch.flush()
        await watch.evaluate()
        found = {s.slo.name: s for s in watch.evaluator.statuses.values()}
        readings = {name: len(api.store.list_events(source="http", kind=name, limit=1000))
                    for name in ("data", "info", "down")}  # fmt: skip
        # Every reading committed so far is one sample (a few may have come after the flush).
        assert 3 <= found["data-latency"].counts.total <= readings["data"]
        info = found["info-latency"].counts
        assert info.total >= 3 and info.good == 0  # ≥ 80 ms each: never under 50 ms
        down = found["down-up"]
        assert down.counts.total >= 3 and down.counts.good == 0
        assert down.slices is not None and down.slices.bad == down.slices.with_data >= 1
        # A bad minute of a month at 99 %: a sliver of the budget; fewer samples than
        # min_requests: no page, however bad they all are.
        assert down.budget_left is not None and 0 < down.budget_left < 1
        assert down.state == "ok" and down.firing == []
