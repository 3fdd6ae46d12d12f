"""SLOs in a running opsmedic: events become samples, a burn becomes slo_burn events that rules
match, and the numbers show on /metrics, GET /api/v1/slos and `opsmedic slo`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from api_service import running_api
from opsmedic.model import Event

SLOS = [{"name": "checkout", "service": "shop", "objective": 99, "min_requests": 5,
         "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}},
        {"name": "quiet", "objective": 99.9,
         "sli": {"events": {"total": ["source=nothing"], "good": ["severity=info"]}}}]  # fmt: skip
RULES = [{"name": "page-oncall", "do": ["noop"],
          "when": {"source": "opsmedic", "kind": "slo_burn", "severity": "page"}}]  # fmt: skip


async def test_a_burn_pages_through_a_rule_and_shows_everywhere(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES, slos=SLOS) as api:
        watch = api.service.slos
        assert watch is not None
        now = api.rt.clock.now()
        # Half of the requests fail: a 50x burn over every window.
        events = [Event(source="lb", resource="/pay", severity=s, time=now)
                  for s in ("critical", "info") * 10]  # fmt: skip
        await api.rt.engine.submit(events)
        await watch.flush()
        await watch.evaluate()
        await api.rt.engine.drain()
        burns = api.store.list_events(source="opsmedic", kind="slo_burn")
        assert sorted((e.severity, e.labels["window"]) for e in burns) == [
            ("page", "1h"), ("page", "6h"), ("ticket", "3d")]  # fmt: skip
        assert {e.labels["slo"] for e in burns} == {"checkout"}
        assert {e.labels["service"] for e in burns} == {"shop"}
        # The two pages matched the rule like any other event; the ticket did not.
        runs = api.store.list_runs(rule="page-oncall")
        assert sorted(r.event_id for r in runs) == sorted(
            e.id for e in burns if e.severity == "page"
        )

        async with api.client(api.tokens["read"]) as client:
            slos = (await client.get("/api/v1/slos")).json()
            metrics = (await client.get("/metrics")).text
        checkout, quiet = slos
        assert checkout["state"] == "exhausted"  # 10 bad of 20 at 99 %: 50 budgets spent
        assert (checkout["good"], checkout["total"]) == (10, 20)
        assert checkout["budget_remaining"] == -49.0
        assert checkout["burn_rates"]["1h"] == 50.0
        assert [f["window"] for f in checkout["firing"]] == ["1h", "6h", "3d"]
        assert quiet["state"] == "no data" and quiet["budget_remaining"] is None
        assert 'opsmedic_slo_budget_remaining{slo="checkout"} -49.0' in metrics
        assert 'opsmedic_slo_budget_remaining{slo="quiet"} NaN' in metrics
        assert 'opsmedic_slo_burn_rate{slo="checkout",window="5m"} 50.0' in metrics
        assert "opsmedic_slo_evaluation_cpu_seconds" in metrics

        config = str(tmp_path / "opsmedic.yaml")
        shown = _cli("slo", "--json", "--config", config)
        assert [s["name"] for s in json.loads(shown.stdout)] == ["checkout", "quiet"]
        table = _cli("slo", "checkout", "--config", config)
        header, row = table.stdout.splitlines()
        assert header.split("\t")[:6] == ["slo", "service", "objective", "window", "state",
                                          "budget left"]  # fmt: skip
        assert row.split("\t")[:7] == ["checkout", "shop", "99 %", "30d occurrences",
                                       "exhausted", "-4900.00 %", "10/20"]  # fmt: skip
        unknown = _cli("slo", "checkot", "--config", config, check=False)
        assert unknown.returncode == 2
        assert "unknown SLO 'checkot' (did you mean checkout?)" in unknown.stderr

        # Evaluated again while still burning: no new event (they resolve when it stops,
        # tests/unit/slo/test_evaluator.py).
        await watch.evaluate()
        assert len(api.store.list_events(source="opsmedic", kind="slo_burn")) == 3


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsmedic", *args], capture_output=True,
                          text=True, check=check, timeout=60)  # fmt: skip


def _alert(name: str, severity: str) -> dict[str, object]:
    return {"status": "firing", "labels": {"alertname": name, "service": "checkout",
                                           "severity": severity},
            # Alertmanager re-sends a firing alert with the time it started: long ago here.
            "annotations": {}, "startsAt": "2026-11-22T02:01:16Z",
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": name}  # fmt: skip


async def test_webhook_alerts_are_samples_of_an_events_sli(tmp_path: Path) -> None:
    slos = [{"name": "checkout-alerts", "objective": 90,
             "sli": {"events": {"total": ["source=alertmanager", "labels.service=checkout"],
                                "bad": ["labels.severity=critical"]}}}]  # fmt: skip
    body = {"receiver": "opsmedic", "status": "firing", "version": "4", "groupKey": "{}",
            "alerts": [_alert("Slow", "warning"), _alert("Down", "critical"),
                       _alert("Busy", "warning"), _alert("Full", "warning")]}  # fmt: skip
    async with running_api(tmp_path, slos=slos) as api:
        async with api.client(api.tokens["ingest"]) as client:
            reply = await client.post("/api/v1/webhooks/alertmanager", json=body)
            assert reply.status_code == 202, reply.text
        watch = api.service.slos
        assert watch is not None
        await watch.flush()
        await watch.evaluate()
        status = watch.evaluator.statuses["checkout-alerts"]
        assert (status.counts.good, status.counts.total) == (3, 4)
        assert status.burn[5] == 2.5  # 25 % bad where 10 % is allowed
        # Counted when they arrived, and shown as off the clock.
        assert status.as_dict()["skewed_samples"] == 4
