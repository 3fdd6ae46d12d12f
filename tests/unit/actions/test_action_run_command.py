"""run_command on this host: exit codes, group-killing timeouts, output, env, no injection."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from injections import INJECTIONS
from opsmedic.actions import run_command
from opsmedic.clock import SystemClock
from opsmedic.model import Event, Outcome
from opsmedic.plugins import ActionContext
from opsmedic.templating import Templates, template_context
from opsmedic.transport import process
from processes import all_gone, pids_in

MakeCtx = Callable[..., ActionContext]  # the make_ctx fixture of conftest.py

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


async def run(ctx: ActionContext, **raw: Any) -> Outcome:
    return await run_command.run(run_command.Params.model_validate(raw), ctx)


async def run_rendered(ctx: ActionContext, event: Event, raw: dict[str, Any]) -> Outcome:
    """Render like the engine does, validate, run."""
    params = Templates().render(raw, template_context(event, "rule-1", "run-1"))
    return await run_command.run(run_command.Params.model_validate(params), ctx)


def stdout_of(outcome: Outcome) -> str:
    assert outcome.output.startswith("[stdout]\n"), outcome.output
    assert "[stderr]" not in outcome.output, outcome.output
    return outcome.output.removeprefix("[stdout]\n")


# --- exit codes, output, environment ----------------------------------------------------------


async def test_it_succeeds_on_exit_zero_and_reports_details(make_ctx: MakeCtx) -> None:
    """Exit 0 is ok; details carry argv, host, exit code and byte counts."""
    outcome = await run(make_ctx(), argv=["printf", "%s", "hello"])
    assert outcome.ok
    assert outcome.message == "exit 0"
    assert outcome.output == "[stdout]\nhello"
    assert outcome.details == {
        "argv": ["printf", "%s", "hello"],
        "host": None,
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "stdout_bytes": 5,
        "stderr_bytes": 0,
    }


async def test_the_exit_code_decides_with_ok_exit_codes(make_ctx: MakeCtx) -> None:
    """A non-zero exit fails unless listed in ok_exit_codes; stderr is labelled."""
    failed = await run(make_ctx(), argv=["sh", "-c", "echo oops >&2; exit 3"])
    assert not failed.ok
    assert failed.message == "exit 3 (ok: 0)"
    assert failed.details["exit_code"] == 3
    assert failed.output == "[stderr]\noops\n"
    allowed = await run(make_ctx(), argv=["sh", "-c", "exit 3"], ok_exit_codes=[0, 3])
    assert allowed.ok


async def test_a_missing_program_is_a_failed_outcome(make_ctx: MakeCtx) -> None:
    """No such program: failed, with the reason, not an exception."""
    outcome = await run(make_ctx(), argv=["/nonexistent/opsmedic-no-such-program"])
    assert not outcome.ok
    assert "cannot start /nonexistent/opsmedic-no-such-program" in outcome.message
    assert "No such file" in outcome.message


async def test_a_signal_death_is_reported_by_name(make_ctx: MakeCtx) -> None:
    """A command killed by a signal fails and says which."""
    outcome = await run(make_ctx(), argv=["sh", "-c", "kill -KILL $$"])
    assert not outcome.ok
    assert outcome.details["signal"] == "SIGKILL"
    assert outcome.message == "killed by SIGKILL"


async def test_output_is_truncated_to_the_limit_keeping_head_and_tail(make_ctx: MakeCtx) -> None:
    """stdout and stderr are each cut to output_limit bytes, with the cut counted."""
    script = "printf 'HEAD'; head -c 100000 /dev/zero | tr '\\0' x; printf 'TAIL'; printf E >&2"
    outcome = await run(make_ctx(actions={"output_limit": 256}), argv=["sh", "-c", script])
    assert outcome.ok
    assert outcome.details["stdout_bytes"] == 100008
    stdout, stderr = outcome.output.split("\n[stderr]\n")
    assert stdout.startswith("[stdout]\nHEAD")
    assert stdout.endswith("TAIL")
    assert "…[99752 bytes cut]…" in stdout
    assert stderr == "E"


async def test_env_cwd_and_stdin_reach_the_command(make_ctx: MakeCtx, tmp_path: Path) -> None:
    """env adds variables, cwd sets the directory, stdin is fed and closed."""
    script = 'printf "%s|%s|%s|%s|" "$GREETING" "$OPSMEDIC_RULE" "$OPSMEDIC_TARGET" "$PWD"; cat'
    outcome = await run(
        make_ctx(),
        argv=["sh", "-c", script],
        env={"GREETING": "hello world"},
        cwd=str(tmp_path),
        stdin="from stdin",
    )
    assert stdout_of(outcome) == f"hello world|rule-1|web-1|{tmp_path}|from stdin"


async def test_the_daemons_secrets_are_not_passed_on(
    make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a short list of variables (PATH, HOME, locale …) is inherited from opsmedic."""
    monkeypatch.setenv("OPSMEDIC_TEST_SECRET_TOKEN", "s3cret")
    outcome = await run(make_ctx(), argv=["env"])
    names = {line.split("=", 1)[0] for line in stdout_of(outcome).splitlines()}
    assert "OPSMEDIC_TEST_SECRET_TOKEN" not in names
    assert "PATH" in names
    assert {"OPSMEDIC_RUN_ID", "OPSMEDIC_RULE", "OPSMEDIC_TARGET"} <= names


async def test_stdin_is_empty_when_not_given(make_ctx: MakeCtx) -> None:
    """A command that reads stdin sees end-of-file at once, it does not hang."""
    outcome = await run(make_ctx(), argv=["cat"], timeout="30s")
    assert outcome.ok
    assert outcome.output == ""


async def test_dry_run_describes_and_runs_nothing(make_ctx: MakeCtx, tmp_path: Path) -> None:
    """In dry-run nothing is executed; the outcome says what would have run."""
    marker = tmp_path / "ran"
    outcome = await run(make_ctx(dry_run=True), argv=["touch", str(marker)])
    assert outcome.ok
    assert outcome.message == f"dry-run: would run touch {marker}"
    assert outcome.details["dry_run"] is True
    assert not marker.exists()


async def test_an_unknown_ssh_host_fails_with_close_matches(make_ctx: MakeCtx) -> None:
    """A host name missing from ssh_hosts fails cleanly, naming the near misses."""
    hosts = {
        "web-1": {"host": "10.0.0.1", "user": "ops"},
        "db-1": {"host": "10.0.0.2", "user": "o"},
    }
    outcome = await run(make_ctx(ssh_hosts=hosts), argv=["true"], host="web1")
    assert not outcome.ok
    assert outcome.message == "unknown ssh host 'web1' (did you mean web-1?)"
    none = await run(make_ctx(), argv=["true"], host="web1")
    assert none.message == "no ssh_hosts configured"


# --- timeouts -------------------------------------------------------------------------


async def test_a_timeout_kills_the_whole_process_group(make_ctx: MakeCtx, tmp_path: Path) -> None:
    """The command and the grandchild it spawned are both gone after a timeout."""
    pidfile = tmp_path / "pids"
    script = f"sleep 100 & echo $$ $! > {pidfile}; wait"
    outcome = await run(make_ctx(), argv=["sh", "-c", script], timeout="1s")
    assert not outcome.ok
    assert outcome.details["timed_out"] is True
    assert outcome.message == "timed out after 1s; its process group was killed"
    assert all_gone(pids_in(pidfile))


async def test_a_timeout_escalates_to_sigkill(make_ctx: MakeCtx, tmp_path: Path) -> None:
    """A group that ignores SIGTERM is SIGKILLed after the grace period."""
    pidfile = tmp_path / "pids"
    # Ignored signals stay ignored across exec, so the sleep shrugs off SIGTERM too.
    script = f"trap '' TERM; sleep 100 & echo $$ $! > {pidfile}; wait"
    outcome = await run(make_ctx(), argv=["sh", "-c", script], timeout="1s")
    assert outcome.details["timed_out"] is True
    assert outcome.details["signal"] == "SIGKILL"
    assert all_gone(pids_in(pidfile))


async def test_the_engines_deadline_also_kills_the_group(make_ctx: MakeCtx, tmp_path: Path) -> None:
    """When the caller cancels (its own asyncio.timeout), the group is killed before it returns."""
    pidfile = tmp_path / "pids"
    script = f"sleep 100 & echo $$ $! > {pidfile}; wait"
    params = run_command.Params.model_validate({"argv": ["sh", "-c", script], "timeout": "100s"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await run_command.run(params, make_ctx())
    assert all_gone(pids_in(pidfile))


async def test_a_leftover_daemon_holding_the_pipes_does_not_block(
    make_ctx: MakeCtx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that exits leaving a child on its stdout returns; output is marked short."""
    monkeypatch.setattr(process, "DRAIN_GRACE", 0.2)
    pidfile = tmp_path / "pid"
    outcome = await run(
        make_ctx(), argv=["sh", "-c", f"echo started; sleep 100 & echo $! > {pidfile}"]
    )
    try:
        assert outcome.ok
        assert outcome.details["output_incomplete"] is True
        assert outcome.output.startswith("[stdout]\nstarted")
    finally:
        for pid in pids_in(pidfile):
            os.kill(pid, signal.SIGKILL)


# --- a value from an event never becomes shell syntax ----------------------------------------


@pytest.fixture
def marker() -> Any:
    """A path no test may create: the injections try to."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "injected"
        yield path
        assert not path.exists(), "an event value was executed as shell syntax"


@pytest.mark.parametrize("template", INJECTIONS)
async def test_a_label_is_exactly_one_argument(
    make_ctx: MakeCtx, marker: Path, template: str
) -> None:
    """Rendered into argv, any label reaches the program as one argument, byte for byte."""
    value = template.format(marker=marker)
    event = Event(source="test", host="web-1", labels={"evil": value})
    raw = {
        "argv": [
            sys.executable,
            "-c",
            PRINT_ARGV,
            "{{ event.labels.evil }}",
            "x{{ event.labels.evil }}y",
        ]
    }
    outcome = await run_rendered(make_ctx(), event, raw)
    assert outcome.ok, outcome.output
    assert json.loads(stdout_of(outcome)) == [value, f"x{value}y"]


@pytest.mark.parametrize("template", INJECTIONS)
async def test_printf_prints_a_label_verbatim(
    make_ctx: MakeCtx, marker: Path, template: str
) -> None:
    """Through printf '%s' the label comes back exactly as it went in."""
    value = template.format(marker=marker)
    event = Event(source="test", labels={"evil": value})
    outcome = await run_rendered(
        make_ctx(), event, {"argv": ["printf", "%s", "{{ event.labels.evil }}"]}
    )
    assert outcome.ok
    assert outcome.output == (f"[stdout]\n{value}" if value else "")


async def test_echo_receives_an_injection_as_text(make_ctx: MakeCtx, marker: Path) -> None:
    """/bin/echo prints the would-be command substitution instead of running it."""
    event = Event(source="test", labels={"evil": f"$(touch {marker}); `touch {marker}`"})
    outcome = await run_rendered(
        make_ctx(), event, {"argv": ["/bin/echo", "{{ event.labels.evil }}"]}
    )
    assert stdout_of(outcome) == f"$(touch {marker}); `touch {marker}`\n"


@pytest.mark.parametrize("template", INJECTIONS)
async def test_a_shquoted_label_in_a_shell_script_is_one_word(
    make_ctx: MakeCtx, marker: Path, template: str
) -> None:
    """In the opt-in shell form, `| shquote` keeps the label one word, never syntax."""
    value = template.format(marker=marker)
    event = Event(source="test", labels={"evil": value})
    script = f"{sys.executable} -c '{PRINT_ARGV}' {{{{ event.labels.evil | shquote }}}} end"
    outcome = await run_rendered(make_ctx(), event, {"shell": script})
    assert outcome.ok, outcome.output
    assert json.loads(stdout_of(outcome)) == [value, "end"]


_ARGV_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=40
)


@settings(max_examples=50, deadline=None)
@given(label=_ARGV_TEXT)
def test_any_text_label_arrives_as_one_argument(label: str) -> None:
    """Property: whatever text a label holds, the program receives exactly it, as one argument."""
    ctx = ActionContext(clock=SystemClock(), log=structlog.get_logger(), run_id="r", rule="r")
    event = Event(source="test", labels={"any": label})
    raw = {"argv": [sys.executable, "-c", PRINT_ARGV, "{{ event.labels.any }}"]}
    outcome = asyncio.run(run_rendered(ctx, event, raw))
    assert outcome.ok, outcome.output
    assert json.loads(stdout_of(outcome)) == [label]


async def test_a_relative_cwd_is_relative_to_the_config_directory(
    make_ctx: MakeCtx, tmp_path: Path
) -> None:
    """Like probes, a relative cwd starts from opsmedic.yaml's directory, not the daemon's."""
    (tmp_path / "scripts").mkdir()
    ctx = make_ctx(base_dir=str(tmp_path))
    outcome = await run(ctx, argv=["pwd"], cwd="scripts")
    assert stdout_of(outcome) == f"{tmp_path / 'scripts'}\n"
