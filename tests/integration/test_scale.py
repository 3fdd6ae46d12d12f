"""The `scale` action against a real nginx and real instance processes on loopback
(tests/services_scale.py): scale-out routes a new instance only once healthy, scale-in drains
one under load with no request failing, bounds and cooldown refuse, the record survives a
restart, an instance that never becomes healthy is stopped and counted, and a rule's limit
escalates after repeated failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil
import pytest
import yaml

from opsmedic.clock import SystemClock
from opsmedic.errors import ScaleRefused
from opsmedic.model import Event
from opsmedic.releases.scale import Scaler
from opsmedic.runtime import Runtime, build, build_registry

if __package__:
    from ..services import serving
    from ..services_scale import ScaleRig, instance_argv, instance_at
else:
    from services import serving
    from services_scale import ScaleRig, instance_argv, instance_at

MAX_REQUESTS = 3000  # the bound of every load a test sends
PAUSE_S = 0.005  # between two requests of the load: at most 200 requests/s


@contextlib.asynccontextmanager
async def _scaler(rig: ScaleRig, **changes: Any) -> AsyncIterator[Scaler]:
    scaler = Scaler(rig.services(**changes), rig.root / "state", SystemClock())
    # Like opsmedic stopping, leaving the block leaves the instances running; the rig keeps
    # the scaler (its processes' handles) and stops what is left at the end of the test.
    rig.children.append(scaler.launchers)
    yield scaler


def _answers(rig: ScaleRig, count: int) -> Counter[str]:
    """Who answered `count` requests sent through nginx (status: body)."""
    with httpx.Client(timeout=10) as client:
        return Counter(
            f"{r.status_code}: {r.text}" for r in (client.get(rig.url) for _ in range(count))
        )


def _record(rig: ScaleRig, state: str = "state") -> dict[str, Any]:
    return json.loads((rig.root / state / "scale" / "app.json").read_text())


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_scale_out_serves_through_nginx_and_scale_in_drains_under_load(
    scale_rig: ScaleRig,
) -> None:
    rig = scale_rig
    async with _scaler(rig) as scaler:
        out = await scaler.scale("app", by=1)
        assert out.ok, out.message
        assert out.details["instances"] == [rig.address(1), rig.address(2)]
        assert rig.address(2) in rig.upstream()
        port2 = rig.base_port + 2
        assert _answers(rig, 10) == {f"200: instance {rig.base_port + 1}": 5,
                                     f"200: instance {port2}": 5}  # fmt: skip
        pid = _record(rig)["instances"]["2"]["pid"]
        assert _alive(pid)

        # Scale in while a bounded load runs through nginx, each request slow enough that
        # some are in flight on instance 2 when it leaves the upstream.
        rig.delay_file.write_text("0.02")
        statuses: list[int | str] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set() and len(statuses) < MAX_REQUESTS:
                    try:
                        statuses.append(client.get(rig.url).status_code)
                    except httpx.HTTPError as exc:
                        statuses.append(type(exc).__name__)
                    stop.wait(PAUSE_S)

        loader = threading.Thread(target=load)
        loader.start()
        try:
            await asyncio.sleep(0.3)
            back = await scaler.scale("app", by=-1)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            loader.join()
        assert back.ok, back.message
        assert "drained and stopped" in back.message
        assert back.details["instances"] == [rig.address(1)]
        assert Counter(statuses).keys() == {200}, Counter(statuses)
        assert not _alive(pid)
        assert rig.address(2) not in rig.upstream()
        assert _record(rig)["instances"].keys() == {"1"}


async def test_bounds_cooldown_and_a_restart_that_knows_the_instances(
    scale_rig: ScaleRig,
) -> None:
    rig = scale_rig
    async with _scaler(rig) as scaler:
        with pytest.raises(ScaleRefused, match=r"^app: scaling to 0 instance\(s\) is below "
                           r"min 1 \(1 serve\)$"):  # fmt: skip
            await scaler.scale("app", by=-1)
        with pytest.raises(ScaleRefused, match=r"to 4 instance\(s\) is above max 3 \(1 serve"):
            await scaler.scale("app", to=4)
        assert rig.address(1) in rig.upstream()  # nothing changed
        dry = await scaler.scale("app", to=3, dry_run=True)
        assert dry.ok and dry.message == "app: would scale from 1 to 3 instance(s)"
        assert (await scaler.scale("app", to=2)).ok
        pid = _record(rig)["instances"]["2"]["pid"]

    # A new process (a restarted opsmedic) reads the record: instance 2 is its to stop, and
    # the cooldown it recorded holds.
    async with _scaler(rig, cooldown="1h") as again:
        with pytest.raises(ScaleRefused, match="inside its cooldown of 3600s"):
            await again.scale("app", by=1)
    async with _scaler(rig) as again:
        assert _alive(pid)
        back = await again.scale("app", to=1)
        assert back.ok, back.message
        assert not _alive(pid)
        assert rig.address(2) not in rig.upstream()


async def test_an_instance_never_healthy_is_stopped_and_counted(scale_rig: ScaleRig) -> None:
    rig = scale_rig
    async with _scaler(rig, unhealthy=True, health={"path": "/health", "timeout": "1s"}) as scaler:
        before = rig.upstream()
        failed = await scaler.scale("app", by=1)
        assert not failed.ok
        assert failed.message.startswith("app: scale-out failed: instance 2: http://")
        assert "not healthy within 1s (last: status 503)" in failed.message
        assert failed.message.endswith("stopped 1 new instance(s), 1 serve")
        assert failed.details == {"instances": [rig.address(1)], "unhealthy": 1}
        assert rig.upstream() == before  # it never got traffic
        assert not any(_alive(pid) for pid in scaler.launchers["app"].children)
        assert _record(rig)["unhealthy"] == 1
        assert _record(rig)["instances"].keys() == {"1"}


async def test_an_instance_that_exits_is_reported_at_once(scale_rig: ScaleRig) -> None:
    rig = scale_rig
    broken = rig.scale()
    broken["command"]["argv"] = [*broken["command"]["argv"], "--no-such-flag"]
    async with _scaler(rig, command=broken["command"]) as scaler:
        failed = await scaler.scale("app", by=1)
    assert not failed.ok
    assert "exited before http://" in failed.message, failed.message
    log = (rig.root / "state" / "scale" / "app" / "2.log").read_text()
    assert "unrecognized arguments: --no-such-flag" in log


def _unhealthy_site(rig: ScaleRig, health_timeout: str, rules: list[Any]) -> Runtime:
    """An opsmedic site (config, store, `rules`) whose service `app` starts instances that
    never become healthy within `health_timeout`."""
    site = rig.root / "site"
    (site / "rules").mkdir(parents=True)
    service = rig.service(unhealthy=True, health={"path": "/health", "timeout": health_timeout})
    config = {"store": f"sqlite:///{site}/opsmedic.db", "api": {"enabled": False},
              "services": {"app": service}}  # fmt: skip
    (site / "opsmedic.yaml").write_text(yaml.safe_dump(config))
    (site / "rules" / "scale.yaml").write_text(yaml.safe_dump(rules))
    return build(site / "opsmedic.yaml", registry=build_registry())


async def test_a_rule_scaling_out_onto_unhealthy_instances_escalates_after_its_limit(
    scale_rig: ScaleRig,
) -> None:
    rig = scale_rig
    rules = [
        {"name": "scale-out-on-latency", "when": {"source": "http", "resource": "app"},
         "do": [{"scale": {"service": "app", "by": 1}}],
         "limit": {"max_runs": 2, "within": "1h"}},
        {"name": "page", "when": {"source": "opsmedic", "kind": "escalation"}, "do": ["noop"]},
    ]  # fmt: skip
    rt = _unhealthy_site(rig, "500ms", rules)
    await rt.engine.start()
    try:
        for value in (900.0, 950.0, 990.0):
            await rt.engine.submit([Event(source="http", resource="app", value=value)])
            await rt.engine.drain()
        assert rt.store is not None
        runs = rt.store.list_runs(rule="scale-out-on-latency")
        escalations = rt.store.list_events(kind="escalation")
    finally:
        await rt.engine.close()
    # Newest first: two failed scale-outs, then the limit: skipped, paused and escalated.
    assert [str(r.state) for r in runs] == ["skipped", "failed", "failed"]
    assert "limit reached: 2 runs within 3600s" in runs[0].message
    assert "not healthy within 0.5s" in runs[1].steps[0].message
    assert len(escalations) == 1
    assert _record(rig, "site/state")["unhealthy"] == 2  # state_dir: beside the config
    assert rig.address(2) not in rig.upstream()


async def test_nginx_refusing_the_new_upstream_stops_the_new_instance(
    scale_rig: ScaleRig,
) -> None:
    """A scale-out whose router change nginx refuses: the healthy new instance is stopped and
    forgotten, the upstream keeps instance 1 alone; without a record, a router that cannot be
    read refuses the scale before anything starts."""
    rig = scale_rig
    refusing = rig.root / "nginx-refusing"
    refusing.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        "if '-t' in sys.argv:\n    sys.exit('nginx: [emerg] refused by the test')\n"
        f"os.execv({rig.settings.program!r}, [{rig.settings.program!r}, *sys.argv[1:]])\n"
    )
    refusing.chmod(0o755)
    router = rig.router()
    router["nginx"]["program"] = str(refusing)
    async with _scaler(rig, router=router) as scaler:
        before = rig.upstream()
        failed = await scaler.scale("app", by=1)
        assert not failed.ok
        assert "scale-out failed: upstream app: nginx -t refused" in failed.message, failed.message
        assert "refused by the test" in failed.message
        assert rig.upstream() == before
        assert _record(rig)["instances"].keys() == {"1"}
        assert not any(_alive(pid) for pid in scaler.launchers["app"].children)
    router["nginx"]["program"] = str(rig.root / "no-such-nginx")
    (rig.root / "state" / "scale" / "app.json").unlink()
    async with _scaler(rig, router=router) as scaler:
        with pytest.raises(
            ScaleRefused, match=r"^app: no record of its instances, and cannot run .*no-such-nginx"
        ):
            await scaler.scale("app", by=1)
        assert not scaler.launchers["app"].children  # no instance was started


async def test_a_connection_left_open_is_waited_for_up_to_drain_timeout(
    scale_rig: ScaleRig,
) -> None:
    rig = scale_rig
    async with _scaler(rig, drain_timeout="1s", stop_timeout="1s") as scaler:
        assert (await scaler.scale("app", by=1)).ok
        host, port = rig.address(2).rsplit(":", 1)
        with socket.create_connection((host, int(port))):  # a client that never sends
            back = await scaler.scale("app", by=-1)
    assert back.ok, back.message
    assert (
        f"{rig.address(2)} drained and stopped (1 connection(s) still open after " in back.message
    )
    assert "drain_timeout 1s); 1 serve" in back.message


async def test_a_port_another_process_listens_on_is_refused_before_starting(
    scale_rig: ScaleRig,
) -> None:
    rig = scale_rig
    port = rig.base_port + 2
    foreign_log = rig.root / "foreign.log"
    with serving(instance_at(port, rig.delay_file), port, foreign_log) as foreign:
        async with _scaler(rig) as scaler:
            before = rig.upstream()
            failed = await scaler.scale("app", by=1)
            assert not failed.ok
            assert (
                f"instance 2: {rig.address(2)} is already listened on by pid {foreign.pid} "
                "(python" in failed.message
            ), failed.message
            assert rig.upstream() == before  # the foreign server never got traffic
            assert not scaler.launchers["app"].children  # nothing was started
            assert _record(rig)["instances"].keys() == {"1"}
        assert foreign.poll() is None  # and it was left alone


async def test_a_healthy_answer_from_a_process_not_the_instances_is_not_routed(
    scale_rig: ScaleRig,
) -> None:
    """The instance hands its port to a process outside its tree (another session, reparented):
    the health check is answered, but not by the instance, so it is never routed."""
    rig = scale_rig
    detached = " ".join(shlex.quote(a) for a in instance_argv(rig.delay_file))
    command = {"argv": ["sh", "-c", f"setsid -f {detached}; exec sleep 60"]}
    try:
        async with _scaler(rig, command=command) as scaler:
            before = rig.upstream()
            failed = await scaler.scale("app", by=1)
            assert not failed.ok
            assert f"{rig.address(2)} is served by pid " in failed.message, failed.message
            assert "not by the instance's process" in failed.message
            assert rig.upstream() == before
            assert not any(_alive(pid) for pid in scaler.launchers["app"].children)
    finally:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == rig.base_port + 2 and conn.pid:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(conn.pid).kill()


async def test_a_step_timeout_mid_scale_out_stops_the_new_instance_and_counts_it(
    scale_rig: ScaleRig,
) -> None:
    """The real engine cancels the step while the new instance waits for its health check:
    the instance is stopped, forgotten and counted unhealthy, not left `starting`."""
    rig = scale_rig
    rules = [{"name": "scale-out", "when": {"source": "http", "resource": "app"},
              "do": [{"scale": {"service": "app", "by": 1}, "timeout": "500ms"}]}]  # fmt: skip
    rt = _unhealthy_site(rig, "1m", rules)
    await rt.engine.start()
    try:
        await rt.engine.submit([Event(source="http", resource="app", value=900.0)])
        await rt.engine.drain()
        assert rt.store is not None
        (run,) = rt.store.list_runs(rule="scale-out")
    finally:
        await rt.engine.close()
    assert str(run.steps[0].state) == "timed_out", run.steps[0].message
    record = _record(rig, "site/state")
    assert record["instances"].keys() == {"1"} and record["unhealthy"] == 1
    assert rig.address(2) not in rig.upstream()
    port = str(rig.base_port + 2)
    instance_2 = [p for p in psutil.process_iter(["cmdline"]) if port in (p.info["cmdline"] or [])]
    assert not [p.pid for p in instance_2 if _alive(p.pid)]


def test_check_warns_of_a_scale_step_timeout_below_health_and_drain(scale_rig: ScaleRig) -> None:
    site = scale_rig.root / "site"
    (site / "rules").mkdir(parents=True)
    service = scale_rig.service(health={"path": "/health", "timeout": "40s"}, drain_timeout="30s")
    (site / "opsmedic.yaml").write_text(yaml.safe_dump({"services": {"app": service}}))
    (site / "rules" / "scale.yaml").write_text(
        "- name: out\n  when: {source: http}\n  do:\n    - scale: {service: app, by: 1}\n"
        "      timeout: 1m\n- name: fine\n  when: {source: http}\n  do:\n"
        "    - scale: {service: app, by: 1}\n      timeout: 71s\n"
    )
    result = subprocess.run([sys.executable, "-m", "opsmedic", "check"], cwd=site,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    warning = (
        f"{site / 'rules' / 'scale.yaml'}:4:1: warning: out.scale: timeout 60s is below service "
        "app's health.timeout 40s + drain_timeout 30s (70s): a scale waiting as configured "
        "would be cancelled; give the step timeout: 70s or more"
    )
    assert warning in result.stderr, result.stderr
    assert "fine.scale" not in result.stderr
