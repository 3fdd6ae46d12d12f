"""The run_command action: an argv (or an opt-in shell script) run locally or over SSH."""

from __future__ import annotations

import os
import re
import shlex
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsmedic.config.located import unknown_name
from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import PositiveDuration
from opsmedic.errors import ActionError, RetryableError
from opsmedic.model import Outcome
from opsmedic.paths import TemplatedPath
from opsmedic.plugins import ActionContext, ActionSpec
from opsmedic.shell_template import check_shell_template
from opsmedic.templating import Rendered, is_template
from opsmedic.transport.output import Captured
from opsmedic.transport.process import run_local
from opsmedic.transport.ssh import run_remote

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables a shell, the dynamic loader or an interpreter reads as code, or as where to find
# code: an event must not choose them. BASH_ENV and ENV name a file the shell runs first; PS4
# is expanded (command substitutions too) under `set -x`; IFS re-splits every word.
_CODE_ENV = re.compile(
    r"BASH_ENV|ENV|PS[0-4]|PROMPT_COMMAND|SHELLOPTS|BASHOPTS|IFS|PATH|CDPATH|GLOBIGNORE|FPATH"
    r"|BASH_\w*|LD_\w*|PYTHON\w*|PERL5?LIB|PERL5OPT|RUBYOPT|RUBYLIB|NODE_OPTIONS|GIT_\w*"
    r"|LESSOPEN|LESSCLOSE|PAGER|EDITOR|VISUAL"
)
# What a local command inherits from the daemon. Not the rest: opsmedic's environment holds
# the secrets that config reads through `env:`, and a remediation script has no need of them.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "TMPDIR")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Params(BaseModel):
    """Exactly one of `argv` (preferred) or `shell`; `host` names an entry of `ssh_hosts`."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    argv: list[str] | None = Field(None, min_length=1)
    shell: str | None = Field(
        None, description="a /bin/sh script; event values via `env:` or `{{ x | shquote }}` words"
    )
    host: Annotated[str | None, ConfigRef("ssh_hosts")] = None
    cwd: TemplatedPath | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: PositiveDuration | None = None
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)
    stdin: str | None = None

    @field_validator("shell", mode="before")
    @classmethod
    def _shell_template(cls, value: Any) -> Any:
        # Rendered text is checked through its template: the text itself is data and may
        # hold `{{` from an event; a plain str is the template itself (or untemplated text).
        if isinstance(value, Rendered):
            check_shell_template(value.source)
        elif isinstance(value, str):
            check_shell_template(value)
        return value

    @field_validator("argv")
    @classmethod
    def _no_nul(cls, argv: list[str] | None) -> list[str] | None:
        return no_nul(argv)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not _IDENTIFIER.fullmatch(key):
                raise ValueError(f"env name {key!r} is not a valid variable name")
            if "\0" in value:
                raise ValueError(f"env {key} contains a NUL byte")
            templated = is_template(value.source if isinstance(value, Rendered) else value)
            if templated and _CODE_ENV.fullmatch(key):
                raise ValueError(
                    f"env {key} is read as code or as where code is found (by a shell, the "
                    "loader or an interpreter): its value cannot come from an event; pass the "
                    "value under a name of your own"
                )
        return env

    @model_validator(mode="after")
    def _argv_or_shell(self) -> Params:
        if (self.argv is None) == (self.shell is None):
            raise ValueError("give exactly one of argv: [program, arg, ...] or shell: script")
        return self

    def command(self) -> list[str]:
        """The argv to execute; a shell script becomes `/bin/sh -c script`."""
        if self.argv is not None:
            return list(self.argv)
        assert self.shell is not None
        return ["/bin/sh", "-c", self.shell]


def no_nul(argv: list[str] | None) -> list[str] | None:
    """`argv` unless a word holds a NUL byte (ValueError naming it)."""
    for i, word in enumerate(argv or ()):
        if "\0" in word:
            raise ValueError(f"argv[{i}] contains a NUL byte, which no program can receive")
    return argv


def command_env(params: Params, ctx: ActionContext, local: bool) -> dict[str, str]:
    """The command's environment: a short pass-through list (local only), run facts, `env`."""
    return run_env(ctx, local) | params.env


def run_env(ctx: ActionContext, local: bool) -> dict[str, str]:
    """What any command an action runs gets: a short pass-through list of the daemon's
    environment (local only) and the run's facts."""
    env: dict[str, str] = {}
    if local:
        env = {key: value for key, value in os.environ.items() if key in _PASSED_ENV}
        env.update((key, value) for key, value in os.environ.items() if key.startswith("LC_"))
        env.setdefault("PATH", _DEFAULT_PATH)
    env.update(OPSMEDIC_RUN_ID=ctx.run_id, OPSMEDIC_RULE=ctx.rule, OPSMEDIC_TARGET=ctx.target)
    return env


async def run(params: Params, ctx: ActionContext) -> Outcome:
    argv = params.command()
    timeout = params.timeout if params.timeout is not None else ctx.timeout
    limit = ctx.output_limit
    details: dict[str, Any] = {"argv": argv, "host": params.host}
    where = f" on {params.host}" if params.host else ""
    if ctx.dry_run:
        details["dry_run"] = True
        return Outcome(
            ok=True, message=f"dry-run: would run {shlex.join(argv)}{where}", details=details
        )
    stdin = params.stdin.encode() if params.stdin is not None else None
    if params.host is None:
        try:
            captured = await run_local(
                argv,
                env=command_env(params, ctx, local=True),
                # Relative to opsmedic.yaml's directory, as for probes: the daemon's own
                # working directory is an accident of how it was started.
                cwd=str(ctx.base_dir / params.cwd) if params.cwd is not None else None,
                stdin=stdin,
                time_limit=timeout,
                captured=Captured.bounded(limit),
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return Outcome(ok=False, message=f"cannot start {argv[0]}: {reason}", details=details)
    else:
        host = ctx.ssh_hosts.get(params.host)
        if host is None:
            return Outcome(ok=False, message=unknown_host(params.host, ctx), details=details)
        try:
            captured = await run_remote(
                host,
                argv,
                base_dir=ctx.base_dir,
                env=command_env(params, ctx, local=False),
                cwd=params.cwd,
                stdin=stdin,
                time_limit=timeout,
                output_limit=limit,
            )
        except RetryableError:
            raise
        except ActionError as exc:  # HostRefused, or the connection lost mid-command
            return Outcome(ok=False, message=str(exc), details=details)
    return _outcome(captured, params, timeout, details)


def unknown_host(name: str, ctx: ActionContext) -> str:
    """Why `name` (rendered: a templated host is only known now) is no `ssh_hosts` entry."""
    known = ctx.ssh_hosts
    return unknown_name("ssh host", name, known) if known else "no ssh_hosts configured"


def _outcome(
    captured: Captured, params: Params, timeout: float, details: dict[str, Any]
) -> Outcome:
    details.update(
        exit_code=captured.exit_code,
        signal=captured.signal,
        timed_out=captured.timed_out,
        stdout_bytes=captured.stdout.total,
        stderr_bytes=captured.stderr.total,
    )
    if captured.incomplete:
        details["output_incomplete"] = True
    if captured.timed_out:
        ok, message = False, f"timed out after {timeout:g}s; its process group was killed"
    elif captured.signal is not None:
        ok, message = False, f"killed by {captured.signal}"
    else:
        ok = captured.exit_code in params.ok_exit_codes
        expected = "" if ok else f" (ok: {', '.join(map(str, params.ok_exit_codes))})"
        message = f"exit {captured.exit_code}{expected}"
    return Outcome(ok=ok, message=message, details=details, output=captured.labelled())


ACTION = ActionSpec(
    name="run_command",
    params=Params,
    run=run,
    destructive=True,
    summary="run a program (argv, or an opt-in shell script) locally or on an SSH host",
)
