"""The API's view of queues (SQLite and PostgreSQL): runs filtered by queue, a bad queue a
422 naming the parameter, an investigation's evidence on its incident, the queue gauges."""

from __future__ import annotations

from pathlib import Path

from api_service import running_api

RULES = [
    {"name": "collect", "when": {"source": "disk"}, "queue": "investigation",
     "do": [{"run_command": {"argv": ["printf", "inode use: 97%%\\nü"]}}]},
    {"name": "fix", "when": {"source": "disk"}, "do": ["noop"]},
]  # fmt: skip


async def test_runs_by_queue_evidence_and_gauges(tmp_path: Path, store_url: str) -> None:
    async with running_api(tmp_path, RULES, store=store_url) as api:
        async with api.client(api.tokens["ingest"]) as client:
            sent = await client.post("/api/v1/events", json={"source": "disk", "resource": "/"})
        assert sent.status_code == 202, sent.text
        await api.rt.engine.drain()
        async with api.client(api.tokens["read"]) as client:
            found = {}
            for queue in ("investigation", "remediation"):
                reply = await client.get("/api/v1/runs", params={"queue": queue})
                assert reply.status_code == 200, reply.text
                found[queue] = [(r["rule"], r["queue"], r["state"]) for r in reply.json()]
            assert found == {"investigation": [("collect", "investigation", "succeeded")],
                             "remediation": [("fix", "remediation", "succeeded")]}  # fmt: skip
            bad = await client.get("/api/v1/runs", params={"queue": "investigations"})
            assert bad.status_code == 422
            assert bad.json()["detail"].startswith("query.queue: Input should be 'remediation'")
            (incident,) = (await client.get("/api/v1/incidents")).json()
            detail = (await client.get(f"/api/v1/incidents/{incident['id']}")).json()
            metrics = (await client.get("/metrics")).text
        assert detail["status"] == "mitigated"  # by fix; collect only looked
        (line,) = [t for t in detail["timeline"] if t["kind"] == "evidence"]
        (step,) = line["evidence"]["steps"]
        assert step["output"] == "[stdout]\ninode use: 97%\nü" and step["cut"] == 0
        assert (step["action"], step["state"], step["on_failure"]) == (
            "run_command", "succeeded", False,
        )  # fmt: skip
        assert line["evidence"]["rule"] == "collect" and line["ref"] == line["evidence"]["run_id"]
        for gauge in ("in_flight", "waiting"):
            for queue in ("investigation", "remediation"):
                assert f'opsmedic_runs_{gauge}{{queue="{queue}"}} 0.0' in metrics, metrics
