"""SSH with asyncssh: connections whose host keys are always checked, and one argv run remotely."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmedic.config.schema import SSHHost
from opsmedic.config.types import credential_path
from opsmedic.errors import ActionError, RetryableError
from opsmedic.transport.output import Captured, OutputBuffer
from opsmedic.transport.process import DRAIN_GRACE, KILL_GRACE

if TYPE_CHECKING:
    import asyncssh

_CHUNK = 65536
# The wrapper prints this first so a timeout can kill the remote process group: sshd makes
# each session's command a session leader, so its pid is also its process-group id.
_PID_LINE = re.compile(rb"(?:^|\n)opsmedic-pid:(\d+)\n")
_PID_SCAN_LIMIT = 4096


class HostRefused(ActionError):
    """The host was reached but cannot be trusted or logged into: retrying will not help."""


def quote(word: str) -> str:
    """Single-quote always (shlex.quote leaves `if` or `A=b` bare, which a shell would parse)."""
    return "'" + word.replace("'", "'\"'\"'") + "'"


def remote_command(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> str:
    """The command line for the remote login shell: every argv element one quoted word."""
    steps = ["echo opsmedic-pid:$$"]
    if cwd is not None:
        steps.append(f"cd {quote(cwd)}")
    if env:
        # Keys are checked as shell identifiers by the action's Params; values are quoted.
        steps.append("export " + " ".join(f"{k}={quote(v)}" for k, v in env.items()))
    steps.append("exec " + " ".join(quote(word) for word in argv))
    return steps[0] + "; " + " && ".join(steps[1:])


def connect_options(host: SSHHost, base_dir: Path) -> dict[str, Any]:
    """asyncssh.connect keywords; never `known_hosts=None`, which would trust any key."""
    known_hosts = _resolve(host.known_hosts, base_dir) or Path("~/.ssh/known_hosts").expanduser()
    if not known_hosts.is_file():
        raise HostRefused(
            f"known_hosts file {known_hosts} not found: host keys are always checked, so add "
            f"the key of {host.host}:{host.port} there (ssh-keyscan -p {host.port} {host.host})"
        )
    options: dict[str, Any] = {
        "host": host.host,
        "port": host.port,
        "username": host.user,
        "known_hosts": str(known_hosts),
        "connect_timeout": host.connect_timeout,
        # ~/.ssh/config could switch host-key checking off (UserKnownHostsFile none) or
        # point elsewhere: only opsmedic's own config decides how opsmedic connects.
        "config": [],
    }
    key_file = _resolve(host.key_file, base_dir)
    if key_file is not None:
        key_file = credential_path(key_file)
        if not key_file.is_file():
            raise HostRefused(f"key_file {key_file} for {host.host} not found")
        options["client_keys"] = [str(key_file)]
        options["agent_path"] = None
    if host.password is not None:
        try:
            options["password"] = host.password.reveal()
        except (ValueError, OSError) as exc:
            raise HostRefused(f"password for {host.user}@{host.host}: {exc}") from None
        if key_file is None:
            options["client_keys"] = None
            options["agent_path"] = None
    return options


async def run_remote(
    host: SSHHost,
    argv: Sequence[str],
    *,
    base_dir: Path,
    env: Mapping[str, str],
    cwd: str | None,
    stdin: bytes | None,
    time_limit: float,
    output_limit: int,
    captured: Captured | None = None,
) -> Captured:
    """Connect (one connection per call), run, and after `time_limit` kill the remote group.

    The output goes into `captured` when given (the log hunt streams it), else into one
    keeping `output_limit` bytes of each stream.

    Raises RetryableError while the command has not started (refused, unreachable, connect
    timeout) and HostRefused for a host key that does not verify or a failed login.
    """
    # Imported here: asyncssh and the cryptography under it cost ≈130 ms and ≈18 MiB, and
    # only a run_command with `host:` needs them.
    import asyncssh

    where = f"{host.user}@{host.host}:{host.port}"
    conn = await connect(host, base_dir, where, after="; the command was not run")
    async with conn:
        try:
            proc = await conn.create_process(
                remote_command(argv, env, cwd), encoding=None, stdin=asyncssh.PIPE
            )
        except asyncssh.ChannelOpenError as exc:
            raise RetryableError(f"{where} refused a session: {exc.reason}") from None
        sink = captured if captured is not None else Captured.bounded(output_limit)
        sink = await _supervise(conn, proc, stdin, time_limit, sink, where)
    return sink


async def connect(
    host: SSHHost, base_dir: Path, where: str, after: str = ""
) -> asyncssh.SSHClientConnection:
    """A connection with the host key checked; every error starts with `where`.

    RetryableError when the host cannot be reached (worth another try), HostRefused when it
    answered but cannot be trusted or let us in; `after` ends those messages (what did not
    happen because of it).
    """
    import asyncssh

    try:
        options = connect_options(host, base_dir)
    except HostRefused as exc:
        raise HostRefused(f"{where}: {exc}{after}") from None
    try:
        return await asyncssh.connect(**options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostRefused(
            f"{where}: host key not trusted by {options['known_hosts']} ({exc.reason}){after}"
        ) from None
    except asyncssh.PermissionDenied:
        raise HostRefused(f"{where}: authentication failed for user {host.user}{after}") from None
    except (OSError, TimeoutError, asyncssh.ConnectionLost) as exc:
        raise RetryableError(f"{where}: cannot connect: {exc or type(exc).__name__}") from None
    except (asyncssh.Error, asyncssh.KeyImportError) as exc:
        raise HostRefused(f"{where}: ssh failed: {exc}{after}") from None


async def _supervise(
    conn: asyncssh.SSHClientConnection,
    proc: asyncssh.SSHClientProcess[bytes],
    stdin: bytes | None,
    time_limit: float,
    captured: Captured,
    where: str,
) -> Captured:
    import asyncssh

    pid: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    readers = [
        asyncio.create_task(_pump_stdout(proc.stdout, captured.stdout, pid)),
        asyncio.create_task(_pump(proc.stderr, captured.stderr)),
    ]
    try:
        if stdin is not None:
            proc.stdin.write(stdin)
        proc.stdin.write_eof()
        try:
            async with asyncio.timeout(time_limit):
                # asyncio.wait, unlike gather, leaves the readers running when time is up.
                await asyncio.wait(readers)
                await proc.wait_closed()
        except TimeoutError:
            captured.timed_out = True
            await _terminate_group(conn, proc, pid)
            _, pending = await asyncio.wait(readers, timeout=DRAIN_GRACE)
            captured.incomplete = bool(pending)
    except asyncio.CancelledError:
        await asyncio.shield(_kill_now(conn, proc, pid))
        raise
    except (OSError, asyncssh.Error) as exc:
        raise _lost(where, exc) from None
    finally:
        proc.close()
        for task in readers:
            task.cancel()
    failed = [t.exception() for t in readers if t.done() and not t.cancelled() and t.exception()]
    exit_signal, exit_status = proc.exit_signal, proc.exit_status
    if failed or (exit_signal is None and exit_status is None and not captured.timed_out):
        raise _lost(where, failed[0] if failed else None)
    if exit_signal is not None:
        captured.signal = f"SIG{exit_signal[0]}"
    else:
        captured.exit_code = exit_status
    return captured


def _lost(where: str, cause: BaseException | None) -> ActionError:
    """Not retryable: the command may already have done its work."""
    why = f" ({cause})" if cause else ""
    return ActionError(
        f"connection to {where} lost while the command ran{why}; it may or may not have completed"
    )


async def _pump(stream: asyncssh.SSHReader[bytes], buffer: OutputBuffer) -> None:
    while chunk := await stream.read(_CHUNK):
        buffer.feed(chunk)


async def _pump_stdout(
    stream: asyncssh.SSHReader[bytes], buffer: OutputBuffer, pid: asyncio.Future[int | None]
) -> None:
    """Strip the wrapper's pid line (after anything a login script printed) and keep the rest."""
    head = b""
    while not pid.done():
        chunk = await stream.read(_CHUNK)
        head += chunk
        match = _PID_LINE.search(head)
        if match:
            pid.set_result(int(match.group(1)))
            head = head[: match.start()] + (b"\n" if match.start() else b"") + head[match.end() :]
        elif not chunk or len(head) > _PID_SCAN_LIMIT:
            pid.set_result(None)
    buffer.feed(head)
    await _pump(stream, buffer)


async def _terminate_group(
    conn: asyncssh.SSHClientConnection,
    proc: asyncssh.SSHClientProcess[bytes],
    pid: asyncio.Future[int | None],
) -> None:
    """SIGTERM the remote group, wait KILL_GRACE for the session to end, then SIGKILL it."""
    pgid = pid.result() if pid.done() else None
    if pgid is None:
        return  # the wrapper never ran: closing the channel is all there is to do
    await _signal_group(conn, pgid, "TERM")
    await _closed(proc)
    await _signal_group(conn, pgid, "KILL")
    await _closed(proc)


async def _kill_now(
    conn: asyncssh.SSHClientConnection,
    proc: asyncssh.SSHClientProcess[bytes],
    pid: asyncio.Future[int | None],
) -> None:
    if pid.done() and (pgid := pid.result()) is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_GRACE):
                await _signal_group(conn, pgid, "KILL")
        await _closed(proc)


async def _closed(proc: asyncssh.SSHClientProcess[bytes]) -> None:
    """Wait up to KILL_GRACE for the session to end: sshd ends it once the command is dead."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_GRACE):
            await proc.wait_closed()


async def _signal_group(conn: asyncssh.SSHClientConnection, pgid: int, sig: str) -> None:
    import asyncssh

    # A second session on the same connection; the group may already be gone, which is fine.
    # `-s SIG --` is the POSIX form: dash refuses `kill -SIG -- -pgid`.
    with contextlib.suppress(OSError, asyncssh.Error):
        await conn.run(f"kill -s {sig} -- -{pgid}", check=False)


def _resolve(path: Path | None, base_dir: Path) -> Path | None:
    """Config paths are relative to the config file's directory."""
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else base_dir / path
