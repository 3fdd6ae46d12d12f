"""`opsmedic run` with services: info's remediation is held while data, which it depends on,
fires (the reply, the incident's timeline and /metrics say so) and runs once data resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api_service import running_api

SERVICES = {
    "data": {"versions": "releases/data", "switch": ["noop"]},
    "info": {"versions": "releases/info", "switch": ["noop"], "depends_on": ["data"]},
}
RULES = [{"name": "restart-info", "when": {"labels.service": "info"},
          "do": [{"run_command": {"argv": ["true"]}}]}]  # fmt: skip


def alert(service: str, status: str = "firing") -> dict[str, Any]:
    return {"source": "prometheus", "kind": "HighLatency", "resource": f"{service}-api",
            "labels": {"service": service}, "severity": "warning", "status": status}  # fmt: skip


async def test_info_is_held_through_the_api_while_data_fires(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES, services=SERVICES) as api, \
            api.client(api.tokens["ingest"]) as ingest, \
            api.client(api.tokens["read"]) as read:  # fmt: skip
        data = (await ingest.post("/api/v1/events", json=alert("data"))).json()["events"][0]
        assert "held" not in data  # nothing held: the key is left out
        reply = await ingest.post("/api/v1/events", json=[alert("info"), alert("info")])
        assert reply.status_code == 202, reply.text
        first, second = reply.json()["events"]
        reason = f"held: info depends on data, which is failing (incident {data['incident_id']})"
        for event in (first, second):
            assert event["run_ids"] == []
            assert event["held"] == [{"rule": "restart-info", "reason": reason}]
        await api.rt.engine.drain()
        incident = (await read.get(f"/api/v1/incidents/{first['incident_id']}")).json()
        held = [x["message"] for x in incident["timeline"] if x["kind"] == "rule_held"]
        assert held == [f"rule restart-info matched; {reason}"]
        metrics = (await read.get("/metrics")).text
        assert 'opsmedic_runs_held_total{dependency="data",rule="restart-info"} 2.0' in metrics
        assert api.store.list_runs() == []

        await ingest.post("/api/v1/events", json=alert("data", "resolved"))
        after = (await ingest.post("/api/v1/events", json=alert("info"))).json()["events"][0]
        assert "held" not in after and len(after["run_ids"]) == 1
        await api.rt.engine.drain()
        assert [r.rule for r in api.store.list_runs()] == ["restart-info"]
