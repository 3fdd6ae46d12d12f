"""kill_process against real CPU hogs run as a real unprivileged user, and what it refuses."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import capture_logs

from action_context import make_action_context
from opsmedic.actions import kill_process
from opsmedic.actions.protection import ProcessesConfig
from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Outcome
from opsmedic.plugins import ActionContext, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner
from opsmedic.templating import Templates, template_context
from processes import all_gone, gone, ready_processes

HOG_USER = "opsmedic-hog"
# A shell spinning on builtins: no child processes, and it says when its traps are set, so
# a test never signals it before it is ready.
HOG = "echo ready; while :; do :; done"
STUBBORN_HOG = "trap '' TERM; " + HOG

Hog = Callable[..., psutil.Process]


@pytest.fixture(scope="session")
def hog_user() -> pwd.struct_passwd:
    """An ordinary user (uid ≥ 1000) for the hogs, created when missing."""
    if os.geteuid() != 0:
        pytest.skip("needs root: to create the hog user and start processes as it")
    try:
        return pwd.getpwnam(HOG_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin")
    assert useradd is not None, "useradd not found (Debian package passwd)"
    result = subprocess.run(
        [useradd, "-M", "-s", "/usr/sbin/nologin", HOG_USER], capture_output=True, text=True
    )
    assert result.returncode in (0, 9), result.stderr  # 9: a parallel session made it first
    user = pwd.getpwnam(HOG_USER)
    assert user.pw_uid >= 1000
    return user


@pytest.fixture
def hog(hog_user: pwd.struct_passwd) -> Iterator[Hog]:
    """hog(script=HOG, user=HOG_USER) → a spinning process, ready; all killed afterwards."""
    with ready_processes() as start:

        def hog(script: str = HOG, user: str | None = HOG_USER) -> psutil.Process:
            return psutil.Process(start(["/bin/sh", "-c", script], user).pid)

        yield hog


async def kill(ctx: ActionContext, target: psutil.Process | int, **params: Any) -> Outcome:
    if isinstance(target, int):
        target = psutil.Process(target)
    raw = {"pid": target.pid, "start_time": target.create_time(), **params}
    return await kill_process.run(kill_process.Params.model_validate(raw), ctx)


def alive(proc: psutil.Process) -> bool:
    return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE


# --- killing ---------------------------------------------------------------------------------


async def test_leashed_by_default_reports_and_kills_nothing(hog: Hog) -> None:
    proc = hog()
    out = await kill(make_action_context("kill_process"), proc)
    assert out.ok and out.details["skipped"] == "leashed"
    assert out.message.startswith(f"leashed: would kill pid {proc.pid} ({HOG_USER}, /bin/sh -c ")
    assert "% CPU) — set enforce: true to act" in out.message
    assert out.details["enforce"] is False
    assert alive(proc)


async def test_dry_run_kills_nothing_even_enforced(hog: Hog) -> None:
    proc = hog()
    out = await kill(make_action_context("kill_process", dry_run=True), proc, enforce=True)
    assert out.ok and out.details["skipped"] == "dry-run"
    assert out.message.startswith(f"dry-run: would kill pid {proc.pid}")
    assert alive(proc)


async def test_enforced_sigterm_stops_it_and_the_outcome_records_the_victim(
    hog: Hog, hog_user: pwd.struct_passwd
) -> None:
    proc = hog()
    with capture_logs() as logs:
        out = await kill(make_action_context("kill_process"), proc, enforce=True, grace="10s")
    assert out.ok, out.message
    [signalled] = [line for line in logs if line["event"] == "process.signalled"]
    assert (signalled["pid"], signalled["signal"], signalled["user"]) == (
        proc.pid, "SIGTERM", HOG_USER,
    )  # fmt: skip
    assert "skipped" not in out.details
    assert all_gone([proc.pid])
    d = out.details
    assert (d["pid"], d["start_time"], d["user"], d["uid"], d["name"]) == (
        proc.pid, proc.create_time(), HOG_USER, hog_user.pw_uid, "sh",
    )  # fmt: skip
    assert d["cmdline"] == ["/bin/sh", "-c", HOG]
    assert d["cpu_percent"] > 5  # measured: a spinning loop, even on a loaded machine
    assert d["rss_bytes"] > 0 and d["runtime_s"] >= 0 and d["took_s"] >= 0
    assert (d["signal"], d["signals_sent"]) == ("SIGTERM", ["SIGTERM"])
    assert out.message.startswith(f"killed pid {proc.pid} ({HOG_USER}, /bin/sh -c ")
    assert "with SIGTERM" in out.message


async def test_a_hog_that_ignores_sigterm_gets_sigkill_after_the_grace(hog: Hog) -> None:
    proc = hog(STUBBORN_HOG)
    out = await kill(
        make_action_context("kill_process"), proc, enforce=True, grace="300ms", cpu_percent=97.5
    )
    assert out.ok, out.message
    assert all_gone([proc.pid])
    assert (out.details["signal"], out.details["signals_sent"]) == (
        "SIGKILL",
        ["SIGTERM", "SIGKILL"],
    )
    assert out.details["cpu_percent"] == 97.5  # the probe's figure, as given
    assert "97.5% CPU" in out.message
    assert "SIGKILL after ignoring SIGTERM for 0.3s" in out.message


async def test_a_process_that_becomes_protected_during_the_grace_gets_no_sigkill(
    hog: Hog,
) -> None:
    """On SIGTERM it execs a program with a protected name (same pid, same pidfd): refused."""
    # Not under pytest's tmp_path: its parents are root's 0700, out of the hog user's reach.
    with tempfile.TemporaryDirectory(prefix="opsmedic-keeper-") as where:
        keeper = Path(where) / "keeper"
        keeper.write_text("#!/bin/sh\nwhile :; do :; done\n")
        os.chmod(keeper, 0o755)
        os.chmod(where, 0o755)
        await _becomes_protected(hog, keeper)


async def _becomes_protected(hog: Hog, keeper: Path) -> None:
    proc = hog(f"trap 'exec {keeper}' TERM; " + HOG)
    ctx = make_action_context("kill_process", processes={"protected_names": ["keeper"]})
    out = await kill(ctx, proc, enforce=True, grace="1s", cpu_percent=99.0)
    assert not out.ok
    assert out.details["protected_by"] == "name", out.message
    assert "refused SIGKILL" in out.message
    assert out.details["signals_sent"] == ["SIGTERM"]
    assert proc.is_running() and proc.name() == "keeper"


async def test_the_step_timeout_shortens_the_grace_so_sigkill_still_runs(hog: Hog) -> None:
    proc = hog(STUBBORN_HOG)
    ctx = make_action_context("kill_process")
    ctx.timeout = 2.0  # less than the grace plus the time SIGKILL is given
    out = await kill(ctx, proc, enforce=True, grace="10s")
    assert out.ok, out.message
    assert out.details["grace_s"] < 10
    assert out.details["signals_sent"] == ["SIGTERM", "SIGKILL"]
    assert all_gone([proc.pid])


# --- identity --------------------------------------------------------------------------------


async def test_a_reused_pid_is_never_hit(hog: Hog) -> None:
    """The pid names a live process, but not the one the event saw (another start time)."""
    proc = hog()
    for earlier in (proc.create_time() - 1.0, proc.create_time() - 0.01):
        raw = {"pid": proc.pid, "start_time": earlier, "enforce": True, "grace": 0}
        out = await kill_process.run(
            kill_process.Params(**raw), make_action_context("kill_process")
        )
        assert out.ok and out.details["pid_reused"] is True
        assert out.details["skipped"].startswith(f"pid {proc.pid} is now another process")
        assert alive(proc)


async def test_the_start_time_may_be_written_any_way_that_keeps_its_value(hog: Hog) -> None:
    proc = hog()
    start = proc.create_time()
    for written in (repr(start), f"{start:.2f}", f"{start:.6f}", start + 1e-6):
        raw = {"pid": str(proc.pid), "start_time": written, "cpu_percent": 99}
        params = kill_process.Params.model_validate(raw)
        out = await kill_process.run(params, make_action_context("kill_process"))
        assert out.details["skipped"] == "leashed", written  # recognised: only the leash held


@pytest.fixture
def exited() -> tuple[int, float]:
    """The pid and start time of a process that has come and gone."""
    done = subprocess.Popen(["true"])
    started = psutil.Process(done.pid).create_time()  # a zombie until reaped: still readable
    done.wait()
    return done.pid, started


async def test_a_pid_that_is_gone_is_skipped(exited: tuple[int, float]) -> None:
    pid, started = exited
    params = kill_process.Params(pid=pid, start_time=started, enforce=True)
    out = await kill_process.run(params, make_action_context("kill_process"))
    assert out.ok and out.details["skipped"] == f"pid {pid} is not running"
    assert out.message == f"pid {pid} is not running"


# --- protection ------------------------------------------------------------------------------


async def refused(target: psutil.Process | int, rule: str, **config: Any) -> Outcome:
    out = await kill(make_action_context("kill_process", **config), target, enforce=True, grace=0)
    assert not out.ok, out.message
    assert out.details["protected_by"] == rule, out.message
    assert out.message.startswith("refused to kill pid ")
    return out


async def test_a_root_hog_is_never_killed_even_enforced(hog: Hog) -> None:
    proc = hog(user=None)  # we are root
    out = await refused(proc, "root")
    assert "it runs as root (uid 0)" in out.message
    assert out.details["user"] == "root"
    assert alive(proc)


async def test_pid_1_is_refused() -> None:
    out = await refused(1, "pid")
    assert "pid 1 (init or kthreadd) is never killed" in out.message


async def test_kernel_threads_are_refused() -> None:
    kthread = next((p for p in psutil.process_iter() if p.ppid() == 2), None)
    if kthread is None:
        pytest.skip("no kernel thread visible here")
    await refused(kthread, "kernel_thread")


async def test_opsmedic_itself_and_its_ancestors_are_refused() -> None:
    await refused(os.getpid(), "self")
    out = await refused(os.getppid(), "ancestor")
    assert f"an ancestor of opsmedic (pid {os.getpid()})" in out.message
    assert psutil.Process(os.getppid()).is_running()


async def test_a_system_users_process_is_refused(hog: Hog, hog_user: pwd.struct_passwd) -> None:
    proc = hog()
    out = await refused(proc, "min_uid", processes={"min_uid": hog_user.pw_uid + 1})
    assert f"uid {hog_user.pw_uid} < processes.min_uid {hog_user.pw_uid + 1}" in out.message
    assert alive(proc)


async def test_a_protected_name_is_refused_and_the_builtin_names_stay(hog: Hog) -> None:
    proc = hog()
    config = {"processes": {"protected_names": ["sh"]}}
    out = await refused(proc, "name", **config)
    assert "its name 'sh' is in processes.protected_names" in out.message
    assert alive(proc)
    assert {"sh", "sshd", "systemd"} <= set(
        ProcessesConfig.model_validate(config["processes"]).protected_names
    )


async def test_a_protected_user_is_refused(hog: Hog) -> None:
    proc = hog()
    out = await refused(proc, "user", processes={"protected_users": ["nobody-here", HOG_USER]})
    assert f"its user '{HOG_USER}' is in processes.protected_users" in out.message
    assert alive(proc)


# --- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"start_time": 1.0}, "pid", "Field required"),
        ({"pid": 42}, "start_time", "Field required"),
        ({"pid": 0, "start_time": 1.0}, "pid", "greater than 0"),
        ({"pid": -1, "start_time": 1.0}, "pid", "greater than 0"),
        ({"pid": 2**31, "start_time": 1.0}, "pid", "less than or equal to 4194304"),
        ({"pid": "12a", "start_time": 1.0}, "pid", "valid integer"),
        ({"pid": 42, "start_time": "yesterday"}, "start_time", "valid number"),
        ({"pid": 42, "start_time": 1.0, "grace": "soon"}, "grace", "not a duration"),
        ({"pid": 42, "start_time": 1.0, "enforce": "maybe"}, "enforce", "valid boolean"),
        ({"pid": 42, "start_time": 1.0, "force": True}, "force", "Extra inputs"),
    ],
)
def test_bad_params_name_the_field(raw: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        kill_process.Params.model_validate(raw)
    errors = {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}
    assert field in errors, errors
    assert fragment in errors[field]


def test_the_action_is_destructive_and_not_rerun_after_a_crash() -> None:
    assert kill_process.ACTION.destructive and not kill_process.ACTION.idempotent
    assert kill_process.Params(pid=5, start_time=1.0).model_dump() == {
        "pid": 5, "start_time": 1.0, "grace": 10.0, "enforce": False, "cpu_percent": None,
    }  # fmt: skip


# --- with the process probe ------------------------------------------------------------------


async def test_probe_sees_the_hog_the_rule_kills_it_and_the_probe_resolves(hog: Hog) -> None:
    proc = hog()

    async def discard(events: list[Event]) -> None:
        return None

    cfg = ProbeConfig.model_validate(
        {"name": "hogs", "type": "process",
         "params": {"users": [HOG_USER], "max_cpu_percent": 5, "window": "1s"}}
    )  # fmt: skip
    runner = ProbeRunner([cfg], Registry(probes={s.name: s for s in BUILTIN_PROBES}), Config().base_dir,
                         SystemClock(), discard, structlog.get_logger(), settings={})  # fmt: skip
    [event] = await runner.run_once()
    assert (event.status, event.resource) == ("firing", f"sh[{proc.pid}]")
    # The step a kill rule writes, rendered from the event as the engine renders it.
    step = {
        "pid": "{{ event.labels.pid }}",
        "start_time": "{{ event.labels.start_time }}",
        "cpu_percent": "{{ event.payload.details.cpu_percent }}",
        "enforce": True,
        "grace": "5s",
    }
    rendered = Templates().render(step, template_context(event, "kill-hogs", "run-1"))
    out = await kill_process.run(
        kill_process.Params.model_validate(rendered), make_action_context("kill_process")
    )
    assert out.ok and out.details["signal"] == "SIGTERM", out.message
    assert gone(proc.pid)
    [resolved] = await runner.run_once()
    assert (resolved.status, resolved.fingerprint) == ("resolved", event.fingerprint)
    assert resolved.payload["details"] == {"exited": True}


async def test_a_signal_the_kernel_refuses_fails_the_step(
    hog: Hog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an unprivileged opsmedic meets with another user's process."""

    def refuse(fd: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(kill_process.signal, "pidfd_send_signal", refuse)
    proc = hog()
    out = await kill(make_action_context("kill_process"), proc, enforce=True, cpu_percent=99)
    assert not out.ok
    assert out.message == f"not allowed to send SIGTERM to pid {proc.pid}: Operation not permitted"
    assert out.details["pid"] == proc.pid
    assert alive(proc)


@pytest.mark.parametrize(
    ("processes", "field", "fragment"),
    [
        ({"min_uid": -1}, "processes.min_uid", "greater than or equal to 0"),
        ({"protected_names": "sshd"}, "processes.protected_names", "valid list"),
        ({"protected_users": [1000]}, "processes.protected_users.0", "valid string"),
        ({"protect_names": ["x"]}, "processes.protect_names", "Extra inputs"),
    ],
)
def test_bad_processes_config_names_the_key(
    processes: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ProcessesConfig.model_validate(processes)
    # The section's own errors, named from the top of the config.
    errors = {".".join(map(str, ("processes", *e["loc"]))): e["msg"] for e in caught.value.errors()}
    assert field in errors, errors
    assert fragment in errors[field]
