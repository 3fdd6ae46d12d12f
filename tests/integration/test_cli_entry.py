"""The command's front door: `--version` from the package metadata, shell completion, and
`--version`/`--help` without the heavy imports (their speed is measured in bench/idle.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from opsmedic.version import installed_version

SCRIPT = Path(sys.executable).parent / "opsmedic"
# What the service and the store bring; none of it is needed to answer --version or --help.
HEAVY = ("fastapi", "sqlalchemy", "pydantic", "uvicorn", "asyncssh", "jinja2", "asyncio", "scipy")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPSMEDIC_", "_OPSMEDIC"))}
    return subprocess.run([*args], env={**full, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_installed_version_is_the_metadata_version() -> None:
    assert installed_version() == version("opsmedic")


@pytest.mark.parametrize(
    "cmd",
    [[str(SCRIPT), "--version"], [sys.executable, "-m", "opsmedic", "--version"],
     [str(SCRIPT), "--log-level", "info", "--version"]],
    ids=["console-script", "python-m", "through-typer"],
)  # fmt: skip
def test_version_prints_the_package_version(cmd: list[str]) -> None:
    result = run(*cmd)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"opsmedic {version('opsmedic')}\n", ""
    )  # fmt: skip


@pytest.mark.parametrize(("flag", "also_light"), [("--version", ("typer", "rich")), ("--help", ())])
def test_version_and_help_leave_the_heavy_imports_alone(
    flag: str, also_light: tuple[str, ...]
) -> None:
    result = run(sys.executable, "-X", "importtime", "-m", "opsmedic", flag)
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert [m for m in (*HEAVY, *also_light) if m in imported] == []
    assert "opsmedic.entry" in imported  # the measurement saw our imports at all


def test_help_lists_every_command() -> None:
    result = run(str(SCRIPT), "--help", env={"COLUMNS": "120"})
    assert result.returncode == 0
    for command in ("demo", "init", "check", "run", "replay", "runs", "systemd-unit"):
        assert f"  {command} " in result.stdout
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_shell_completion_script_and_completions() -> None:
    script = run(str(SCRIPT), "--show-completion", "bash")
    assert script.returncode == 0
    assert "_OPSMEDIC_COMPLETE=complete_bash" in script.stdout
    # What the script asks the command when Tab is pressed after `opsmedic syst`.
    words = {
        "_OPSMEDIC_COMPLETE": "complete_bash",
        "COMP_WORDS": "opsmedic syst",
        "COMP_CWORD": "1",
    }
    assert run(str(SCRIPT), env=words).stdout.split() == ["systemd-unit"]
    words.update(COMP_WORDS="opsmedic check --un", COMP_CWORD="2")
    assert run(str(SCRIPT), env=words).stdout.split() == ["--unit"]


def test_asyncssh_deprecation_warnings_stay_off_stderr(tmp_path: Path) -> None:
    """An SFTP destination imports asyncssh; cryptography's DSA warnings about it are not
    shown, even with PYTHONWARNINGS=default (so the entry point's filter hides them)."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("x\n")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "opsmedic", "archive", str(tmp_path / "logs"),
         "--to", "sftp://nohost/x", "--include", "*.log", "--min-age", "0"],
        cwd=tmp_path, env={k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
        | {"PYTHONWARNINGS": "default"}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "asyncssh" in imported, result.stderr  # the run did reach the SSH code
    assert result.returncode == 1 and "no ssh_hosts entry is 'nohost'" in result.stdout
    assert "DSA is deprecated" not in result.stderr
    assert "Warning" not in result.stderr.replace("import time", "")


def test_a_log_hunt_imports_its_own_command_alone(tmp_path: Path) -> None:
    """`opsmedic logs hunt` starts without the other commands' modules, structlog or numpy
    (start-up is a share of every hunt's time: docs/loghunt.md#speed), and still works."""
    log = tmp_path / "app.log"
    log.write_text("2024-05-01T10:00:00Z INFO start\n2024-05-01T10:00:01Z ERROR db down\n")
    result = run(sys.executable, "-X", "importtime", "-m", "opsmedic", "--log-level", "info",
                 "logs", "hunt", str(log))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ERROR db down" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    others = sorted(m for m in imported if m.startswith("opsmedic.cli.") and "logs" not in m)
    assert others == ["opsmedic.cli.output", "opsmedic.cli.terminal"]
    assert [m for m in ("structlog", "numpy", "asyncssh", "sqlalchemy") if m in imported] == []


@pytest.mark.parametrize(
    ("argv", "word"),
    [(["logs", "hunt", "x"], "logs"), (["--log-level", "info", "logs"], "logs"),
     (["--log-level=info", "logs"], "logs"), (["--help"], None), ([], None),
     (["--log-level", "logs"], None)],
)  # fmt: skip
def test_the_command_word_skips_the_roots_options(argv: list[str], word: str | None) -> None:
    from opsmedic.cli import command_word

    assert command_word(argv) == word


def test_logs_help_run_alone_lists_its_commands() -> None:
    result = run(str(SCRIPT), "logs", "--help")
    assert result.returncode == 0 and "hunt" in result.stdout
