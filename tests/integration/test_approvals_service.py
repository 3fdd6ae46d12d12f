"""Approval before destruction through the running service: the API's approve and reject
(scopes, 404, 409, bad bodies), the CLI's (exit codes), and a wait that outlives a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from test_run_service import write_config

from api_service import Api, running_api
from cli_process import opsmedic, via
from opsmedic.model import RunState
from opsmedic.store.store import Store


def rules(marker: Path) -> list[dict[str, Any]]:
    """Appends a line to `marker` once approved: how many times the step ran."""
    return [{"name": "wipe", "when": {"source": "disk"}, "do": [
        {"noop": {}},
        {"run_command": {"argv": ["sh", "-c", f"echo done >> {marker}"]},
         "approve": {"timeout": "1h", "on_timeout": "skip"}},
    ]}]  # fmt: skip


async def waiting(api: Api, resource: str) -> str:
    async with api.client(api.tokens["ingest"]) as ingest:
        reply = await ingest.post("/api/v1/events", json={"source": "disk", "resource": resource})
    (run_id,) = reply.json()["events"][0]["run_ids"]
    await api.rt.engine.drain()  # the run's task ends once it is parked
    assert api.store.get_run(run_id).state is RunState.WAITING_APPROVAL
    return run_id


async def until_state(store: Store, run_id: str, state: RunState) -> None:
    async with asyncio.timeout(30):
        while store.get_run(run_id).state is not state:  # noqa: ASYNC110 - the store is the signal
            await asyncio.sleep(0.02)


async def test_the_api_approves_once_and_refuses_what_it_cannot_decide(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with running_api(tmp_path, rules(marker)) as api:
        run_id = await waiting(api, "/a")
        url = f"/api/v1/runs/{run_id}"
        async with api.client(api.tokens["ingest"]) as ingest:  # an adversary's token
            refused = await ingest.post(f"{url}/approve", json={})
        assert refused.status_code == 403
        async with api.client(api.tokens["operate"]) as op:
            unknown = await op.post("/api/v1/runs/ffffffffffffffff/approve")
            assert unknown.status_code == 404 and "no run" in unknown.json()["detail"]
            for body in ({"comment": 5}, {"extra": 1}, {"step": 0}, {"comment": "a\x07b"},
                         {"comment": "x" * 2001}, {"comment": "ok\u202e"}):  # fmt: skip
                bad = await op.post(f"{url}/approve", json=body)
                assert bad.status_code == 422, (body, bad.text)
            bidi = await op.post(f"{url}/approve", json={"comment": "ok\u202e"})
            assert "comment" in bidi.text and "bidi control" in bidi.text
            other = await op.post(f"{url}/reject", json={"step": 1})
            assert other.status_code == 409 and "not step 1" in other.json()["detail"]
            assert not marker.exists()  # nothing decided by any of those
            ok = await op.post(f"{url}/approve", json={"comment": "checked the disk", "step": 2})
            assert ok.status_code == 200, ok.text
            body = ok.json()
            assert (body["run_id"], body["step"], body["action"]) == (run_id, 2, "run_command")
            assert body["decision"] == "approved" and body["comment"] == "checked the disk"
            assert body["decided_by"].startswith("api test-operate-")
            for again in ("approve", "reject"):
                replay = await op.post(f"{url}/{again}", json={})
                assert replay.status_code == 409
                assert "approved by api test-operate-" in replay.json()["detail"]
            await until_state(api.store, run_id, RunState.SUCCEEDED)
            finished = await op.post(f"{url}/approve", json={})
            assert finished.status_code == 409
            assert "is succeeded, not waiting" in finished.json()["detail"]
    assert marker.read_text() == "done\n"


async def test_the_cli_decides_and_says_why_it_cannot(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with running_api(tmp_path, rules(marker)) as api:
        run_id = await waiting(api, "/b")

        async def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(opsmedic, "runs", *args, cwd=tmp_path)

        listed = await cli("--state", "waiting_approval", "--json")
        assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
        for args in (("approve", "nosuchrun"), ("approve", run_id, "--as", ""),
                     ("approve", run_id, "--step", "0"), ("reject", run_id, "--comment", "\x1b[2J"),
                     ("approve", run_id, "--as", "bob\u202e"),
                     ("approve", run_id, "--comment", "ok \u2067x")):  # fmt: skip
            bad = await cli(*args)
            assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        done = await cli("reject", run_id[-8:], "--as", "bob", "--comment", "not in business hours")
        assert done.returncode == 0, done.stderr
        bob = f"cli {via('bob')}"  # the name given, and who gave it
        assert f"step 2 (run_command) rejected by {bob}: not in business hours" in done.stdout
        await until_state(api.store, run_id, RunState.SKIPPED)  # the service polled the store
        late = await cli("approve", run_id, "--json")
        assert late.returncode == 1
        assert f"is skipped, not waiting for approval (step 2 (run_command) rejected by {bob}" in (
            " ".join(late.stderr.split()))  # fmt: skip
        shown = await cli("show", run_id, "--json")
        (decided,) = json.loads(shown.stdout)["approvals"]
        assert (decided["decision"], decided["decided_by"]) == ("rejected", bob)
    assert not marker.exists()


def test_a_wait_survives_sigkill_and_the_approved_step_runs_once(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    config = write_config(tmp_path, marker)  # a probe ticking every 0.2 s, rules in rules/
    rule = rules(marker)[0] | {"when": {"source": "command", "kind": "tick", "status": "resolved"},
                               "throttle": {"once_within": "1h"}}  # fmt: skip
    (tmp_path / "rules" / "tick.yaml").write_text(yaml.safe_dump([rule]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    store = Store(f"sqlite:///{tmp_path / 'o.db'}")
    store.migrate()
    command = [sys.executable, "-m", "opsmedic", "run", "-c", str(config)]

    def poll(check: Any) -> None:  # a bounded poll of the store for the real signal
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline
            time.sleep(0.05)

    with subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) as proc:
        try:
            poll(lambda: store.list_runs(state=RunState.WAITING_APPROVAL))
            proc.kill()  # SIGKILL while the run waits
            proc.wait(timeout=10)
        finally:
            proc.kill()
    (run,) = store.list_runs()
    with subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL) as proc:
        try:
            poll(lambda: store.list_events(source="command", limit=1)[0].time > time.time() - 1)
            assert store.get_run(run.id).state is RunState.WAITING_APPROVAL  # not interrupted
            assert opsmedic("runs", "approve", run.id, cwd=tmp_path).returncode == 0
            poll(lambda: store.get_run(run.id).state is RunState.SUCCEEDED)
        finally:
            proc.kill()
    assert marker.read_text() == "done\n"
    assert [r.id for r in store.list_runs()] == [run.id]  # the throttle held: no second run
