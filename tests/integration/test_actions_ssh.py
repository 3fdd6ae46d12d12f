"""run_command over SSH against a real OpenSSH server: quoting, timeouts, host-key checking."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import psutil
import pytest
import structlog

from injections import INJECTIONS
from opsmedic.actions import run_command
from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.errors import RetryableError
from opsmedic.model import Event, Outcome
from opsmedic.plugins import ActionContext
from opsmedic.templating import Templates, template_context
from processes import all_gone, pids_in
from services import SSHServer, free_port

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def make_ctx(sshd: SSHServer, **host: Any) -> ActionContext:
    config = Config.model_validate({"ssh_hosts": {"box": sshd.host_entry(**host)}})
    return ActionContext(
        clock=SystemClock(),
        log=structlog.get_logger(),
        ssh_hosts=config.ssh_hosts,
        run_id="run-1",
        rule="rule-1",
        target="web-1",
    )


async def run(ctx: ActionContext, **raw: Any) -> Outcome:
    return await run_command.run(run_command.Params.model_validate({"host": "box", **raw}), ctx)


async def run_rendered(ctx: ActionContext, event: Event, raw: dict[str, Any]) -> Outcome:
    params = Templates().render({"host": "box", **raw}, template_context(event, "rule-1", "run-1"))
    return await run_command.run(run_command.Params.model_validate(params), ctx)


def stdout_of(outcome: Outcome) -> str:
    assert outcome.output.startswith("[stdout]\n"), outcome.output
    assert "[stderr]" not in outcome.output, outcome.output
    return outcome.output.removeprefix("[stdout]\n")


@pytest.fixture
def marker(shared_dir: Path) -> Iterator[Path]:
    """A path the remote user could create, and that no test may create."""
    path = shared_dir / "injected"
    yield path
    assert not path.exists(), "an event value was executed as shell syntax on the SSH host"


def new_key(path: Path) -> str:
    """Write a fresh ed25519 private key to `path`; return its public key line."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    return bytes(key.export_public_key()).decode()


async def test_it_runs_a_command_over_ssh(sshd: SSHServer) -> None:
    """A remote argv runs as the configured user; exit code and output come back."""
    outcome = await run(make_ctx(sshd), argv=["id", "-un"])
    assert outcome.ok, outcome.message
    assert stdout_of(outcome) == f"{sshd.user}\n"
    assert outcome.details["host"] == "box"
    assert outcome.details["exit_code"] == 0


async def test_a_remote_exit_code_and_stderr_come_back(sshd: SSHServer) -> None:
    """A non-zero exit fails unless allowed; stderr is labelled."""
    outcome = await run(make_ctx(sshd), argv=["sh", "-c", "echo oops >&2; exit 4"])
    assert not outcome.ok
    assert outcome.message == "exit 4 (ok: 0)"
    assert outcome.output == "[stderr]\noops\n"


async def test_env_cwd_and_stdin_reach_the_remote_command(sshd: SSHServer) -> None:
    """env, cwd and stdin work remotely as they do locally, run facts included."""
    script = 'printf "%s|%s|%s|" "$GREETING" "$OPSMEDIC_TARGET" "$PWD"; cat'
    outcome = await run(
        make_ctx(sshd),
        argv=["sh", "-c", script],
        env={"GREETING": 'it\'s a "fine" $(day)'},
        cwd="/tmp",
        stdin="from stdin",
    )
    assert stdout_of(outcome) == 'it\'s a "fine" $(day)|web-1|/tmp|from stdin'


async def test_shell_words_in_argv_stay_plain_words(sshd: SSHServer) -> None:
    """Reserved words, assignments and globs in argv are arguments, not shell syntax."""
    words = ["if", "A=b", "!", "{", "time", "*", "~root", "$HOME"]
    outcome = await run(make_ctx(sshd), argv=["python3", "-c", PRINT_ARGV, *words])
    assert json.loads(stdout_of(outcome)) == words


@pytest.mark.parametrize("template", INJECTIONS)
async def test_a_label_is_one_argument_over_ssh(
    sshd: SSHServer, marker: Path, template: str
) -> None:
    """Rendered into argv, a label reaches the remote program as exactly one argument."""
    value = template.format(marker=marker)
    event = Event(source="test", labels={"evil": value})
    raw = {"argv": ["python3", "-c", PRINT_ARGV, "{{ event.labels.evil }}", "end"]}
    outcome = await run_rendered(make_ctx(sshd), event, raw)
    assert outcome.ok, outcome.output
    assert json.loads(stdout_of(outcome)) == [value, "end"]


async def test_printf_prints_labels_verbatim_over_ssh(sshd: SSHServer, marker: Path) -> None:
    """printf '%s' on the remote host prints each injection attempt as plain text."""
    values = [t.format(marker=marker) for t in INJECTIONS if t]
    event = Event(source="test", labels={f"v{i}": v for i, v in enumerate(values)})
    argv = ["printf", "%s\\0"] + [f"{{{{ event.labels.v{i} }}}}" for i in range(len(values))]
    outcome = await run_rendered(make_ctx(sshd), event, {"argv": argv})
    assert stdout_of(outcome).split("\0")[:-1] == values


async def test_a_shquoted_label_in_a_remote_shell_script_is_one_word(
    sshd: SSHServer, marker: Path
) -> None:
    """The opt-in shell form quotes its values on the remote host too."""
    value = f'\'; touch {marker}; echo "$(touch {marker})"'
    event = Event(source="test", labels={"evil": value})
    script = f"python3 -c '{PRINT_ARGV}' {{{{ event.labels.evil | shquote }}}} end"
    outcome = await run_rendered(make_ctx(sshd), event, {"shell": script})
    assert json.loads(stdout_of(outcome)) == [value, "end"]


async def test_a_remote_timeout_kills_the_remote_process_group(
    sshd: SSHServer, shared_dir: Path
) -> None:
    """The remote command and its grandchild are both gone after a timeout."""
    pidfile = shared_dir / "pids"
    script = f"sleep 100 & echo $$ $! > {pidfile}; wait"
    outcome = await run(make_ctx(sshd), argv=["sh", "-c", script], timeout="2s")
    assert not outcome.ok
    assert outcome.details["timed_out"] is True
    assert all_gone(pids_in(pidfile))


async def test_the_engines_deadline_kills_the_remote_group(
    sshd: SSHServer, shared_dir: Path
) -> None:
    """Cancelled by the caller, the action still kills the remote group before returning."""
    pidfile = shared_dir / "pids"
    script = f"sleep 100 & echo $$ $! > {pidfile}; wait"
    params = run_command.Params.model_validate(
        {"host": "box", "argv": ["sh", "-c", script], "timeout": "100s"}
    )
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(3):
            await run_command.run(params, make_ctx(sshd))
    assert all_gone(pids_in(pidfile))


async def test_a_wrong_host_key_fails_and_runs_nothing(
    sshd: SSHServer, tmp_path: Path, marker: Path
) -> None:
    """A known_hosts entry with another key: failed (not retried), the command never ran."""
    algorithm, key = new_key(tmp_path / "other_key").split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {algorithm} {key}\n")
    ctx = make_ctx(sshd, known_hosts=str(wrong))
    outcome = await run(ctx, argv=["touch", str(marker)])
    assert not outcome.ok
    assert "host key" in outcome.message
    assert str(wrong) in outcome.message
    assert "the command was not run" in outcome.message


async def test_an_unknown_host_key_fails_too(sshd: SSHServer, tmp_path: Path, marker: Path) -> None:
    """An empty known_hosts trusts nothing: the connection is refused, not accepted blindly."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    outcome = await run(make_ctx(sshd, known_hosts=str(empty)), argv=["touch", str(marker)])
    assert not outcome.ok
    assert "the command was not run" in outcome.message


async def test_a_missing_known_hosts_file_fails_before_connecting(
    sshd: SSHServer, tmp_path: Path
) -> None:
    """No known_hosts file: a clear failure that says how to add the key."""
    missing = tmp_path / "nope" / "known_hosts"
    outcome = await run(make_ctx(sshd, known_hosts=str(missing)), argv=["true"])
    assert not outcome.ok
    assert f"known_hosts file {missing} not found" in outcome.message
    assert "ssh-keyscan" in outcome.message


async def test_a_key_the_server_does_not_accept_fails(sshd: SSHServer, tmp_path: Path) -> None:
    """Authentication failure is a failed outcome, not a retry."""
    stranger = tmp_path / "stranger"
    new_key(stranger)
    outcome = await run(make_ctx(sshd, key_file=str(stranger)), argv=["true"])
    assert not outcome.ok
    assert "authentication failed" in outcome.message


async def test_connection_refused_is_retryable(sshd: SSHServer) -> None:
    """Nothing listening: RetryableError, so the engine retries with backoff."""
    with pytest.raises(RetryableError, match="cannot connect"):
        await run(make_ctx(sshd, port=free_port()), argv=["true"])


async def test_a_relative_key_path_is_read_from_the_config_directory(sshd: SSHServer) -> None:
    """key_file and known_hosts are relative to the config file's directory (base_dir)."""
    ctx = make_ctx(sshd, key_file=sshd.key_file.name, known_hosts=sshd.known_hosts.name)
    ctx.base_dir = sshd.key_file.parent
    outcome = await run(ctx, argv=["true"])
    assert outcome.ok, outcome.message


async def test_a_lone_password_secret_that_is_unset_fails_clearly(
    sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password from an unset variable fails naming the variable, not a value."""
    monkeypatch.delenv("OPSMEDIC_TEST_SSH_PASSWORD", raising=False)
    ctx = make_ctx(sshd, key_file=None, password={"env": "OPSMEDIC_TEST_SSH_PASSWORD"})
    outcome = await run(ctx, argv=["true"])
    assert not outcome.ok
    assert "OPSMEDIC_TEST_SSH_PASSWORD is not set" in outcome.message
    assert os.environ.get("OPSMEDIC_TEST_SSH_PASSWORD") is None


async def test_a_connection_lost_mid_command_fails_without_retry(sshd: SSHServer) -> None:
    """Once the command started, a dropped connection is a failure, not a retry: the command
    may already have done its work."""
    token = uuid.uuid4().hex
    task = asyncio.create_task(
        run(make_ctx(sshd), argv=["python3", "-c", "import time; time.sleep(1000)", token])
    )
    command = await asyncio.to_thread(find_process, token)
    try:
        # The per-connection sshd above the command: killing it drops our connection.
        command.parent().kill()
        outcome = await task
    finally:
        command.kill()
    assert not outcome.ok
    assert "lost while the command ran" in outcome.message
    assert "may or may not have completed" in outcome.message


def find_process(token: str, within: float = 30.0) -> psutil.Process:
    """The process whose command line holds `token`, polled up to a deadline."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            if token in " ".join(proc.info["cmdline"] or ()):
                return proc
        time.sleep(0.02)
    raise AssertionError(f"no process with {token} in its command line")
