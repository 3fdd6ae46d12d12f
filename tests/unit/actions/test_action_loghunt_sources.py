"""The loghunt action's commands and journal: real processes through the engine, their
environment, a step given up on killing them, hostile event values, bad input at load."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from action_context import execute_rule, make_action_context
from opsmedic.actions import loghunt, loghunt_sources
from opsmedic.loghunt import commands
from opsmedic.model import Event, Outcome, RunState
from opsmedic.plugins import ActionContext
from processes import all_gone, pids_in, wait_written

# Prints each argument it was given as one line, "ERROR arg=<repr>": what argv the program
# received, word for word.
PRINT_ARGS = "import sys\nfor a in sys.argv[1:]: print('ERROR arg=' + repr(a))"


def ctx_in(tmp_path: Path, **config: Any) -> ActionContext:
    ctx = make_action_context("loghunt", **config)
    ctx.base_dir, ctx.event_time = tmp_path, None
    return ctx


async def hunt(ctx: ActionContext, **raw: Any) -> Outcome:
    return await loghunt.run(loghunt.Params.model_validate(raw), ctx)


def rule_file(tmp_path: Path, step: str) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"- name: hunt\n  when: {{source: alert}}\n  do:\n    - {step}\n")
    return rules


def given(argv_file: Path) -> list[str] | None:
    """The argv the stand-in journalctl was run with; None if it never ran."""
    return json.loads(argv_file.read_text()) if argv_file.exists() else None


def test_the_default_max_bytes_is_the_command_sources() -> None:
    assert loghunt_sources.DEFAULT_MAX_BYTES == commands.DEFAULT_MAX_BYTES


async def test_a_command_beside_files_is_hunted_after_them(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("ERROR from the file\n")
    argv = ["printf", "%s\\n", "INFO a", "ERROR from the command 1", "ERROR from the command 2"]
    outcome = await hunt(ctx_in(tmp_path), files=["app.log"], commands=[{"argv": argv}])
    assert outcome.ok, outcome.message
    assert outcome.details["summary"].startswith("2 distinct errors, 3 occurrences in 2 sources:")
    assert [(e["count"], e["first"]["source"]) for e in outcome.details["events"]] == [
        (1, str(tmp_path / "app.log")),
        (2, "printf '%s\\n' 'INFO a' 'ERROR from the command 1' 'ERROR from the command 2'"),
    ]


async def test_a_command_gets_run_commands_environment_not_the_daemons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret the daemon's config reads from its environment never reaches the command."""
    monkeypatch.setenv("OPSMEDIC_TEST_SECRET", "hunter2")
    script = "import os\nfor k in sorted(os.environ): print('ERROR env', k, os.environ[k])"
    argv = [sys.executable, "-c", script]
    outcome = await hunt(ctx_in(tmp_path), mode="exact", commands=[{"argv": argv}])
    keys = [e["key"] for e in outcome.details["events"]]
    assert "ERROR env OPSMEDIC_RUN_ID run-1" in keys
    assert "ERROR env OPSMEDIC_RULE rule-1" in keys
    assert not [k for k in keys if "hunter2" in k or "OPSMEDIC_TEST_SECRET" in k]


async def test_a_command_that_cannot_start_is_a_note_and_the_files_still_hunted(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.log").write_text("ERROR still found\n")
    outcome = await hunt(ctx_in(tmp_path), files=["app.log"],
                         commands=[{"argv": ["/nonexistent/eb", "logs"]}])  # fmt: skip
    assert outcome.ok
    assert outcome.details["events"][0]["key"] == "ERROR still found"
    assert outcome.details["stats"]["notes"] == [
        "/nonexistent/eb logs: cannot start /nonexistent/eb: No such file or directory"
    ]


async def test_a_dry_run_names_the_commands_and_starts_none(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    outcome = await hunt(
        ctx_in(tmp_path, dry_run=True), commands=[{"argv": ["touch", str(marker)]}]
    )
    assert outcome.ok
    assert outcome.details["would_run"] == [f"touch {marker}"]
    assert outcome.message.startswith("dry-run: would hunt 0 file(s) (0 bytes) and 1 command(s)")
    assert not marker.exists()


async def test_a_command_through_the_engine_with_hostile_event_values_as_one_word_each(
    tmp_path: Path,
) -> None:
    """A real rule run by the Executor: each rendered argv word reaches the program as one
    argument, exactly as the event gave it; nothing of it is run as shell syntax."""
    marker = tmp_path / "pwned"
    values = ["; rm -rf /", "$(id)", "../../x", f"; touch {marker}", f"`touch {marker}`"]
    labels = {f"v{i}": v for i, v in enumerate(values)}
    words = ", ".join(f"'{{{{ event.labels.v{i} }}}}'" for i in range(len(values)))
    rules = rule_file(
        tmp_path,
        f"loghunt: {{mode: exact, context: 0, commands: [{{argv: ['{sys.executable}', '-c', "
        f"{json.dumps(PRINT_ARGS)}, {words}]}}]}}",
    )
    run = await execute_rule(rules, Event(source="alert", labels=labels), tmp_path / "s")
    (step,) = run.steps
    assert step.state is RunState.SUCCEEDED, step.message
    assert [e["key"] for e in step.details["events"]] == [f"ERROR arg={v!r}" for v in values]
    assert not marker.exists()


async def test_a_step_timeout_kills_a_command_that_would_outlive_it(tmp_path: Path) -> None:
    """`sleep 600` with a 10-minute timeout of its own, in a step of 1 s: the engine gives
    up on the step, and the command is killed, not left running behind the worker thread."""
    pids = tmp_path / "pids"
    script = (
        f"import os; open({str(pids)!r}, 'w').write(str(os.getpid())); "
        "os.execvp('sleep', ['sleep', '600'])"
    )
    rules = rule_file(
        tmp_path,
        f"{{loghunt: {{commands: [{{argv: ['{sys.executable}', '-c', {json.dumps(script)}], "
        "timeout: 10m}]}, timeout: 1s}",
    )
    run = await execute_rule(rules, Event(source="alert"), tmp_path / "s")
    (step,) = run.steps
    assert step.state is RunState.TIMED_OUT, step.message
    assert all_gone(pids_in(pids))


async def test_a_cancelled_hunt_kills_its_command(tmp_path: Path) -> None:
    """The engine stopping cancels the step's task: the command goes with it."""
    pids = tmp_path / "pids"
    script = (
        f"import os; open({str(pids)!r}, 'w').write(str(os.getpid())); "
        "os.execvp('sleep', ['sleep', '600'])"
    )
    ctx = ctx_in(tmp_path)
    ctx.timeout = 600
    task = asyncio.create_task(hunt(ctx, commands=[{"argv": [sys.executable, "-c", script]}]))
    await asyncio.to_thread(wait_written, pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all_gone(pids_in(pids))


@pytest.fixture
def journalctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in journalctl first in PATH (this machine has no journal), printing one
    recorded entry and writing the argv it was given to argv.json."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    entry = {"__REALTIME_TIMESTAMP": "1714557601000000", "_PID": "7",
             "_SYSTEMD_UNIT": "pay.service", "MESSAGE": "ERROR charge failed"}  # fmt: skip
    program = bin_dir / "journalctl"
    program.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"print({json.dumps(json.dumps(entry))})\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return tmp_path / "argv.json"


async def test_a_units_journal_is_hunted_over_the_window(tmp_path: Path, journalctl: Path) -> None:
    ctx = ctx_in(tmp_path)
    ctx.event_time = 1714557600.0  # 2024-05-01T10:00:00Z: the window opens 15 minutes before
    outcome = await hunt(ctx, journal=[{"unit": "pay.service"}])
    assert outcome.ok, outcome.message
    (event,) = outcome.details["events"]
    assert event["first"]["source"] == "journal:pay.service"
    assert event["lines"][0]["text"] == (
        "2024-05-01T10:00:01.000000Z pay.service[7]: ERROR charge failed"
    )
    argv = given(journalctl)
    assert argv[-2:] == ["--unit=pay.service", f"--since=@{1714557600 - 900}"]


@pytest.mark.parametrize("unit", ["*", "a b", "-f", "pay.service --all", "../../x"])
async def test_a_templated_unit_must_render_to_a_unit_name(
    tmp_path: Path, journalctl: Path, unit: str
) -> None:
    rules = rule_file(tmp_path, "loghunt: {journal: [{unit: '{{ event.labels.unit }}'}]}")
    run = await execute_rule(rules, Event(source="alert", labels={"unit": unit}), tmp_path / "s")
    (step,) = run.steps
    assert step.state is RunState.FAILED
    assert step.message.startswith("bad parameters: journal[0].unit: "), step.message
    assert "is not a unit name" in step.message
    assert given(journalctl) is None  # journalctl never ran


async def test_a_templated_unit_that_is_a_unit_name_is_hunted(
    tmp_path: Path, journalctl: Path
) -> None:
    rules = rule_file(tmp_path, "loghunt: {journal: [{unit: '{{ event.labels.unit }}.service'}]}")
    run = await execute_rule(rules, Event(source="alert", labels={"unit": "pay"}), tmp_path / "s")
    (step,) = run.steps
    assert step.state is RunState.SUCCEEDED, step.message
    assert "--unit=pay.service" in (given(journalctl) or [])


async def test_a_templated_ssh_host_no_entry_names_fails_the_step_naming_it(
    tmp_path: Path,
) -> None:
    ctx = ctx_in(tmp_path, ssh_hosts={"web-1": {"host": "127.0.0.1", "user": "u"}})
    outcome = await hunt(ctx, ssh="web1", commands=[{"argv": ["true"]}])
    assert not outcome.ok
    assert outcome.message == "ssh: unknown ssh host 'web1' (did you mean web-1?)"
