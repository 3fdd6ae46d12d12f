"""`opsmedic logs hunt --command/--journal/--ssh` and archives, run as an operator runs them."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from cli_process import opsmedic
from opsmedic.archive.formats import open_writer
from services import SSHServer


def _events(stdout: str) -> list[tuple[str, str]]:
    return [(e["first"]["source"], e["lines"][0]["text"]) for e in json.loads(stdout)["events"]]


def test_commands_and_an_archive_are_hunted_in_the_order_given(tmp_path: Path) -> None:
    archive = tmp_path / "old.tar.zst"
    with archive.open("wb") as out:
        writer = open_writer("tar.zst", out, threads=1)
        writer.add(io.BytesIO(b"ERROR archived\n"), "var/log/app.log", 15, 0, 0o644)
        writer.close()
    done = opsmedic(
        "logs", "hunt", str(archive), "--command", "printf 'ERROR from printf\\n'",
        "--command", f"{sys.executable} -c 'print(\"FATAL from python\")'", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _events(done.stdout) == [
        (f"{archive}:var/log/app.log", "ERROR archived"),
        ("printf 'ERROR from printf\\n'", "ERROR from printf"),
        (f"{sys.executable} -c 'print(\"FATAL from python\")'", "FATAL from python"),
    ]


def test_a_failing_command_is_reported_in_notes_exit_0(tmp_path: Path) -> None:
    done = opsmedic("logs", "hunt", "--command", "ls /nonexistent-dir", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note: ls /nonexistent-dir: exit 2" in done.stdout


def test_command_over_ssh_with_the_configs_host(sshd: SSHServer, shared_dir: Path) -> None:
    log = shared_dir / "remote.log"
    log.write_text("INFO a\nERROR remote 1\n")
    config = shared_dir / "opsmedic.yaml"
    config.write_text(
        "ssh_hosts:\n  box:\n"
        f"    host: {sshd.host}\n    port: {sshd.port}\n    user: {sshd.user}\n"
        f"    key_file: {sshd.key_file}\n    known_hosts: {sshd.known_hosts}\n"
    )
    done = opsmedic("logs", "hunt", "--ssh", "box", "--command", f"cat {log}", "--json", "-C0",
                    "--config", str(config), cwd=shared_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _events(done.stdout) == [(f"box:cat {log}", "ERROR remote 1")]
    done = opsmedic("logs", "hunt", "--ssh", "nope", "--journal", "x.service",
                    "--config", str(config), cwd=shared_dir)  # fmt: skip
    assert done.returncode == 2
    assert "--ssh nope: unknown ssh host" in done.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([], "name what to hunt: PATH…, --command or --journal"),
        (["--command", ""], "--command '': no program"),
        (["--command", "echo 'unclosed"], '--command "echo \'unclosed": No closing quotation'),
        (["--command", "no-such-program-x --flag"], "no program no-such-program-x found"),
        (["--journal", "-f"], "--journal '-f': not a unit name"),
        (["--journal", "a b"], "--journal 'a b': not a unit name"),
        (["--command", "true", "--command-timeout", "0"], "--command-timeout 0"),
        (["--command", "true", "--command-max-bytes", "0"], "--command-max-bytes 0"),
        (["app.log", "--ssh", "box"], "--ssh runs --command and --journal on a host"),
        (["--ssh", "box", "--command", "true"], "--ssh box: no ssh_hosts configured"),
    ],
)
def test_bad_source_options_exit_2_naming_the_option(
    tmp_path: Path, args: list[str], named: str
) -> None:
    (tmp_path / "app.log").write_text("ERROR x\n")
    done = opsmedic("logs", "hunt", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert done.stdout == ""


def test_the_cli_defaults_are_the_sources_own() -> None:
    from opsmedic.cli import logsources
    from opsmedic.loghunt import commands

    assert (logsources.DEFAULT_TIMEOUT_S, logsources.DEFAULT_MAX_BYTES) == (
        commands.DEFAULT_TIMEOUT_S, commands.DEFAULT_MAX_BYTES,
    )  # fmt: skip
