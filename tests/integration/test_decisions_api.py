"""The webhook's 202 reply says what each matched rule came to, and an ingest sender flooding
one throttled alert grows the events only: one counted decision row, one timeline line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api_service import running_api

ALERTMANAGER = {
    "receiver": "opsmedic", "status": "firing", "version": "4", "groupKey": "{}",
    "alerts": [{
        "status": "firing", "labels": {"alertname": "DiskFull", "service": "info"},
        "annotations": {}, "startsAt": "2026-11-22T02:01:16Z",
        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "6e890fd1d2e6636f",
    }],
}  # fmt: skip
# Many rules the alert does not match: the reply must not list them.
OTHERS = [{"name": f"other-{n}", "when": {"source": "dns", "kind": f"k{n}"}, "do": ["noop"]}
          for n in range(200)]  # fmt: skip
RULES = [
    {"name": "archive", "when": {"labels.alertname": "DiskFull"}, "do": ["noop"],
     "throttle": {"once_within": "1h"}},
    {"name": "wait", "when": {"labels.alertname": "DiskFull", "for": "10m"}, "do": ["noop"]},
    *OTHERS,
]  # fmt: skip


def outcomes(event: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["rule"], d["outcome"]) for d in event["decisions"]]


async def test_the_reply_lists_each_matched_rules_outcome_and_only_those(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES) as api, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        reply = await ingest.post("/api/v1/webhooks/alertmanager", json=ALERTMANAGER)
        assert reply.status_code == 202, reply.text
        (first,) = reply.json()["events"]
        assert outcomes(first) == [("archive", "planned"), ("wait", "waiting_for")]
        assert first["decisions"][0]["detail"] == f"run {first['run_ids'][0]}"
        assert first["decisions"][1]["detail"] == "for: 600s; matching for 0s"
        await api.rt.engine.drain()
        (again,) = (await ingest.post("/api/v1/webhooks/alertmanager", json=ALERTMANAGER)).json()[
            "events"
        ]
        assert again["run_ids"] == [] and "held" not in again  # existing keys kept as they were
        assert outcomes(again) == [("archive", "throttled"), ("wait", "waiting_for")]
        assert again["decisions"][0]["detail"].startswith("once_within 3600s; last run at ")
        unmatched = {"source": "disk", "resource": "/"}
        (none,) = (await ingest.post("/api/v1/events", json=unmatched)).json()["events"]
        assert none["decisions"] == [] and none["run_ids"] == []


async def test_a_held_match_carries_its_hold_reason(tmp_path: Path) -> None:
    services = {
        "data": {"versions": "releases/data", "switch": ["noop"]},
        "info": {"versions": "releases/info", "switch": ["noop"], "depends_on": ["data"]},
    }
    data = {"source": "prometheus", "kind": "Down", "resource": "data-api",
            "labels": {"service": "data"}, "severity": "critical"}  # fmt: skip
    async with running_api(tmp_path, RULES, services=services) as api, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        (down,) = (await ingest.post("/api/v1/events", json=data)).json()["events"]
        (held,) = (await ingest.post("/api/v1/webhooks/alertmanager", json=ALERTMANAGER)).json()[
            "events"
        ]
        reason = f"held: info depends on data, which is failing (incident {down['incident_id']})"
        assert held["held"] == [{"rule": "archive", "reason": reason}]
        # `for:` is decided before a hold: `wait` is still waiting, not held.
        assert outcomes(held) == [("archive", "held"), ("wait", "waiting_for")]
        assert held["decisions"][0]["detail"] == reason
        await api.rt.engine.drain()
        (row,) = [r for r in api.store.suppressed.list() if r.rule == "archive"]
        assert (row.outcome, row.detail) == ("held", reason)


async def test_an_ingest_flood_of_one_throttled_alert_stays_one_row(tmp_path: Path) -> None:
    """2,000 repeats: the events are stored (that is ingest's job), the decisions are not."""
    async with running_api(tmp_path, RULES[:1]) as api, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        alert = {"source": "prometheus", "kind": "DiskFull", "resource": "info",
                 "labels": {"alertname": "DiskFull"}}  # fmt: skip
        await ingest.post("/api/v1/events", json=alert)
        await api.rt.engine.drain()
        body = {"events": [alert] * 500}
        for _ in range(4):
            reply = await ingest.post("/api/v1/events", json=body)
            assert reply.status_code == 202, reply.text
        await api.rt.engine.drain()
        (row,) = api.store.suppressed.list()
        assert (row.rule, row.outcome, row.count) == ("archive", "throttled", 2000)
        _, _, lines = api.store.get_incident(str(row.incident_id))
        (line,) = [x for x in lines if x.kind == "suppressed"]
        assert line.message.startswith("rule archive throttled \u00d72000 since ")
