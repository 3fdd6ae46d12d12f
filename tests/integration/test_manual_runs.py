"""Runs by hand on a real store (SQLite and PostgreSQL): `opsmedic rules run` as an operator
types it, `POST /api/v1/rules/{name}/runs` against a running service, and the checks that keep
a run by hand from racing the live engine's runs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import psutil
import pytest

from api_service import running_api, write_config
from cli_process import OPSMEDIC, opsmedic, via
from opsmedic.engine.manual import ManualRuns, RunAsk, event_by_hand
from opsmedic.errors import RunRefused
from opsmedic.model import RunState
from opsmedic.runtime import Runtime, build, build_registry
from opsmedic.views import RunView
from store_fixtures import store_url  # noqa: F401 - a fixture

RULES: list[dict[str, Any]] = [
    {"name": "clean", "when": {"source": "disk"},
     "do": [{"run_command": {"argv": ["echo", "cleaned {{ event.host }}"]}}, "noop"],
     "limit": {"max_runs": 2, "within": "1h"}},
    {"name": "quiet", "enabled": False, "when": {"source": "disk"}, "do": ["noop"]},
    # In flight until the test opens its gate (a file): no timing in the test.
    {"name": "slow", "when": {"source": "slow"},
     "do": [{"run_command": {"argv": ["sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done',
                                      "{{ event.labels.gate }}"], "timeout": "120s"}}]},
    # pid 1 by pid and start time, enforced: the protection still refuses it.
    {"name": "kill-init", "when": {"source": "proc"},
     "do": [{"kill_process": {"pid": "{{ event.labels.pid }}", "enforce": True,
                              "start_time": "{{ event.labels.start_time }}", "cpu_percent": 0}}]},
    {"name": "touch", "when": {"source": "touch"},
     "do": [{"run_command": {"argv": ["touch", "{{ event.labels.file }}"]}}]},
    {"name": "asks", "when": {"source": "asks"},
     "do": ["noop", {"noop": {}, "approve": {"timeout": "10m"}}]},
]  # fmt: skip


@pytest.fixture
def runtimes(store_url: str) -> Iterator[Callable[[Path], Runtime]]:  # noqa: F811
    """Runtimes on the store of `store_url` (one per process it stands for), closed after."""
    made: list[Runtime] = []

    def make(where: Path) -> Runtime:
        made.append(build(write_config(where, RULES, store=store_url), registry=build_registry()))
        return made[-1]

    yield make
    for rt in made:
        if rt.store is not None:
            rt.store.close()


def _manual(rt: Runtime) -> ManualRuns:
    assert rt.engine.manual is not None
    return rt.engine.manual


def _ask(rule: str, **event: Any) -> RunAsk:
    return RunAsk(rule, event_by_hand({"host": "web1", **event}, 1.0e9), "cli tester")


async def test_a_run_by_hand_is_recorded_as_manual_without_an_incident(
    tmp_path: Path, runtimes: Callable[[Path], Runtime]
) -> None:
    rt = runtimes(tmp_path)
    assert rt.store is not None
    seen: list[str] = []
    run, task = await _manual(rt).start(_ask("clean"), lambda step: seen.append(step.action))
    assert run.state is RunState.RUNNING and rt.store.get_run(run.id).state is RunState.RUNNING
    done = await task
    assert seen == ["run_command", "noop"]  # each step as it ended
    stored = rt.store.get_run(run.id)
    assert (stored.state, stored.trigger, stored.started_by, stored.forced) == (
        RunState.SUCCEEDED, "manual", "cli tester", False)  # fmt: skip
    assert stored.steps[0].output == "[stdout]\ncleaned web1\n" == done.steps[0].output
    event = rt.store.get_event(stored.event_id)
    assert (event.source, event.incident_id) == ("manual", "")
    assert rt.store.list_incidents() == []
    assert rt.store.recent_fired(0) == []  # a run by hand sets no throttle
    assert [r[0] for r in rt.store.recent_runs(0)] == ["clean"]  # but counts in the limit


async def test_the_store_refuses_what_another_process_has_in_flight_or_used_up(
    tmp_path: Path, runtimes: Callable[[Path], Runtime]
) -> None:
    """Two processes (two runtimes on one database): each planner knows only its own runs,
    the store's check knows both; a refused run records nothing."""
    rt, other = runtimes(tmp_path / "a"), runtimes(tmp_path / "b")
    assert rt.store is not None
    gate = tmp_path / "gate"
    run, task = await _manual(other).start(_ask("slow", source="slow", labels={"gate": str(gate)}))
    counts = rt.store.counts()
    with pytest.raises(RunRefused, match=f"run {run.id} of slow .* is running"):
        await _manual(rt).start(_ask("slow", source="slow", labels={"gate": str(gate)}))
    assert rt.store.counts() == counts
    gate.touch()
    assert (await task).state is RunState.SUCCEEDED
    # Once finished, the alert is free again.
    await (await _manual(rt).start(_ask("slow", source="slow", labels={"gate": str(gate)})))[1]
    for _ in range(2):
        await (await _manual(other).start(_ask("clean")))[1]
    with pytest.raises(RunRefused, match="limit reached: 2 runs within 3600s for web1"):
        await _manual(rt).start(_ask("clean"))
    await (await _manual(rt).start(_ask("clean", host="web2")))[1]  # its own window
    dry_ask = RunAsk("clean", _ask("clean").event, "x", dry_run=True)
    dry = await (await _manual(rt).start(dry_ask))[1]
    assert dry.state is RunState.SKIPPED  # a dry run acts on nothing: not limited
    assert rt.store.counts()["runs"] == counts["runs"] + 5


async def test_the_api_runs_a_rule_by_hand(tmp_path: Path, store_url: str) -> None:  # noqa: F811
    async with running_api(tmp_path, RULES, store=store_url) as api, \
            api.client(api.tokens["operate"]) as operate, \
            api.client(api.tokens["read"]) as read:  # fmt: skip
        path = "/api/v1/rules/clean/runs"
        reply = await operate.post(path, json={"event": {"host": "web1"}, "wait": True})
        assert reply.status_code == 200, reply.text
        run = reply.json()
        assert list(run) == list(RunView.model_fields)
        assert (run["state"], run["trigger"], run["forced"]) == ("succeeded", "manual", False)
        assert run["started_by"].startswith("api test-operate-")
        started = await operate.post(path, json={"event": {"host": "web3"}})
        assert started.status_code == 202 and started.json()["state"] == "running"
        await api.rt.engine.drain()
        shown = (await read.get(f"/api/v1/runs/{started.json()['id']}")).json()
        assert shown["trigger"] == "manual"
        assert (await read.get("/api/v1/incidents")).json() == []

        forced = await operate.post("/api/v1/rules/quiet/runs", json={"force": True, "wait": True})
        assert forced.status_code == 200 and forced.json()["forced"] is True
        refusals = [
            ("quiet", {}, 409, "rule 'quiet' is disabled"),
            ("claen", {}, 404, "unknown rule 'claen' (did you mean clean?)"),
            ("clean", {"event": {"labels": "x"}}, 422, "event: labels: "),
            ("clean", {"event": {"source": ""}}, 422, "event: source: "),
            ("clean", {"event": []}, 422, "event"),
            ("clean", {"force": "yes"}, 422, "force"),
            ("clean", {"evnt": {}}, 422, "evnt"),
        ]
        for name, body, status, detail in refusals:
            reply = await operate.post(f"/api/v1/rules/{name}/runs", json=body)
            assert reply.status_code == status, (name, body, reply.text)
            assert detail in json.dumps(reply.json()["detail"]), reply.text
        for token in ("ingest", "read"):
            async with api.client(api.tokens[token]) as client:
                assert (await client.post(path, json={})).status_code == 403
        assert {r.trigger for r in api.store.list_runs()} == {"manual"}


async def test_the_api_shares_the_live_engines_lock_and_limit(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running_api(tmp_path, RULES) as api, \
            api.client(api.tokens["operate"]) as operate, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        # The same alert as the live engine's (the default kind of an event by hand).
        alert = {"source": "slow", "kind": "run_by_hand", "labels": {"gate": str(gate)}}
        live = await ingest.post("/api/v1/events", json={**alert, "host": "web1"})
        assert len(live.json()["events"][0]["run_ids"]) == 1
        # By hand while the live run is in flight: refused by the live engine's own lock.
        path = "/api/v1/rules/slow/runs"
        reply = await operate.post(path, json={"event": {**alert, "host": "web1"}})
        assert reply.status_code == 409 and "in flight" in reply.json()["detail"]
        # A dry run by hand of that alert takes no lock, so it must not free the live one.
        dry = {"event": {**alert, "host": "web1"}, "dry_run": True, "wait": True}
        assert (await operate.post(path, json=dry)).status_code == 200
        repeat = await ingest.post("/api/v1/events", json={**alert, "host": "web1"})
        assert repeat.json()["events"][0]["run_ids"] == []  # still in flight
        assert [d["outcome"] for d in repeat.json()["events"][0]["decisions"]] == ["in_flight"]
        # A run by hand in flight holds the live engine back in turn.
        mine = await operate.post(path, json={"event": {**alert, "host": "web2"}})
        assert mine.status_code == 202
        again = await ingest.post("/api/v1/events", json={**alert, "host": "web2"})
        assert again.json()["events"][0]["run_ids"] == []
        gate.touch()
        # A rule that waits for approval is refused by hand (nothing could park it), and
        # nothing is recorded; a dry run of it shows it.
        asks = await operate.post("/api/v1/rules/asks/runs", json={"event": {"host": "a1"}})
        assert asks.status_code == 409 and "approval" in asks.json()["detail"]
        seen = await operate.post(
            "/api/v1/rules/asks/runs", json={"event": {"host": "a1"}, "dry_run": True, "wait": True}
        )
        assert seen.status_code == 200 and seen.json()["dry_run"] is True
        # Live runs count in the limit of a run by hand (clean: 2 an hour per target).
        disk = {"source": "disk", "host": "web9", "kind": "run_by_hand"}
        planned = (await ingest.post("/api/v1/events", json=disk)).json()["events"][0]
        assert len(planned["run_ids"]) == 1
        await api.rt.engine.drain()
        reply = await operate.post("/api/v1/rules/clean/runs", json={"event": disk, "wait": True})
        assert reply.status_code == 200, reply.text
        reply = await operate.post("/api/v1/rules/clean/runs", json={"event": disk})
        assert reply.status_code == 409 and "limit reached" in reply.json()["detail"]
        # …and runs by hand in the live engine's: the next live event is limited.
        await api.rt.engine.drain()
        limited = (await ingest.post("/api/v1/events", json=disk)).json()["events"][0]
        await api.rt.engine.drain()
        states = {r.id: r.state for r in api.store.list_runs(rule="clean")}
        assert [states[i] for i in limited["run_ids"] if i in states] == [RunState.SKIPPED]


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Path:  # noqa: F811
    write_config(tmp_path, RULES, store=store_url)
    return tmp_path


def test_the_cli_runs_a_rule_by_hand_and_streams_its_steps(site: Path) -> None:
    done = opsmedic("rules", "run", "clean", "--set", "host=web1", "--set", "labels.team=ops",
                    "--as", "alice", cwd=site)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run ") and lines[0].endswith(
        f"of clean on web1: started by cli {via('alice')}"
    )
    assert "succeeded run_command" in lines[1] and "cleaned web1" in done.stdout
    assert lines[-1].startswith("succeeded 2 step(s) succeeded")
    shown = opsmedic("rules", "run", "clean", "--set", "host=web2", "--json", cwd=site)
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert (run["trigger"], run["state"]) == ("manual", "succeeded")
    assert run["started_by"].startswith("cli ")
    assert "succeeded run_command" in shown.stderr  # the steps still stream, beside the JSON
    listed = opsmedic("runs", cwd=site).stdout.splitlines()
    assert listed[0].split("\t")[-1] == "by" and listed[1].endswith("(manual)")
    details = opsmedic("runs", "show", run["id"], cwd=site).stdout
    assert "trigger\tmanual" in details
    assert json.loads(opsmedic("incidents", "--json", cwd=site).stdout) == []


def test_the_cli_refuses_what_it_must(site: Path) -> None:
    event = site / "event.json"
    event.write_text('{\n  "source": "disk",\n  "labels": {"a": "b"},\n  "status": "open"\n}\n')
    for args, needle in (
        (["quiet"], "rule 'quiet' is disabled (enabled: false at "),
        (["nope"], "unknown rule 'nope'"),
        (["clean", "--set", "bogus=1"], "'bogus=1': use KEY=VALUE"),
        (["clean", "--set", "labels.x"], "'labels.x': use KEY=VALUE"),
        (["clean", "--set", "severity=a\nb"], "severity"),
        (["clean", "--event", str(site / "missing.json")], "cannot read"),
        (["clean", "--event", str(event)], f"{event}:4:13: status: "),
        (["clean", "--as", ""], "--as"),
        (["clean", "--as", "alice\u2066"], "bidi control"),
    ):
        found = opsmedic("rules", "run", *args, cwd=site)
        assert found.returncode == 2, (args, found.stderr)
        assert needle in found.stderr, (args, found.stderr)
    assert "runs" not in opsmedic("runs", "--json", cwd=site).stdout.replace("[]", "")
    forced = opsmedic("rules", "run", "quiet", "--force", "--json", cwd=site)
    assert forced.returncode == 0 and json.loads(forced.stdout)["forced"] is True


def test_a_protected_process_stays_protected_and_a_dry_run_acts_on_nothing(site: Path) -> None:
    init = psutil.Process(1)
    refused = opsmedic("rules", "run", "kill-init", "--set", "source=proc", "--set", "labels.pid=1",
                       "--set", f"labels.start_time={init.create_time()}", cwd=site)  # fmt: skip
    assert refused.returncode == 1
    assert "refused to kill pid 1" in refused.stdout
    assert init.is_running()
    target = site / "touched"
    dry = opsmedic("rules", "run", "touch", "--set", "source=touch", "--set", f"labels.file={target}", "--dry-run",
                   "--json", cwd=site)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    run = json.loads(dry.stdout)
    assert (run["state"], run["dry_run"]) == ("skipped", True)
    assert run["steps"][0]["params"]["argv"] == ["touch", str(target)]  # rendered
    assert not target.exists()


def test_two_processes_running_one_alert_by_hand_at_once_start_one_run(site: Path) -> None:
    """Both check the store before either inserts only without the write lock (SQLite) or the
    advisory lock per rule (PostgreSQL): with it, exactly one runs and the other is refused."""
    gate = site / "gate"
    args = ["rules", "run", "slow", "--set", "source=slow", "--set", f"labels.gate={gate}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    procs = [subprocess.Popen([*OPSMEDIC, *args], cwd=site, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        ends = {pool.submit(p.communicate, timeout=120): p for p in procs}
        first = next(as_completed(ends))  # the refused one: the other waits at the gate
        gate.touch()
        outputs = {ends[f]: f.result() for f in [first, *(f for f in ends if f is not first)]}
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outputs
    refused = next(err for p, (_, err) in outputs.items() if p.returncode == 1)
    assert "of slow for this alert" in refused and "is running" in refused
    runs = json.loads(opsmedic("runs", "--json", cwd=site).stdout)
    assert [(r["rule"], r["state"]) for r in runs] == [("slow", "succeeded")]
