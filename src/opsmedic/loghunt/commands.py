"""A command's output as a log: run as run_command runs one (argv, a timeout, bounded output),
locally or over SSH, its stdout spooled to an unnamed file and read as it is written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmedic.errors import OpsmedicError
from opsmedic.loghunt.compressed import READ_BYTES
from opsmedic.transport.output import Captured, OutputBuffer
from opsmedic.transport.process import run_local

if TYPE_CHECKING:  # the SSH stack (asyncssh, the config's models) loads only when used
    from opsmedic.config.schema import SSHHost

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_BYTES = 256 << 20
STDERR_BYTES = 2048  # of stderr, in a note: its head and tail


class Spool(OutputBuffer):
    """Output kept in an unnamed temporary file up to `limit` bytes, read back while it is
    written: memory stays flat however much a command prints, the disk holds at most
    `limit`, and the command never waits for the hunt (nothing blocks its event loop)."""

    __slots__ = ("_changed", "_file", "done", "full", "kept_bytes", "limit")

    def __init__(self, limit: int, full: Callable[[], None] | None = None) -> None:
        super().__init__(0, keep_tail=False)
        self.limit = limit
        self.full = full  # called once the limit is reached (from the command's thread)
        self.kept_bytes = 0
        self.done = False
        self._file = tempfile.TemporaryFile()  # noqa: SIM115  # closed by close()
        self._changed = threading.Condition()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        part = chunk[: max(0, self.limit - self.kept_bytes)]
        if part:
            self._file.write(part)
            self._file.flush()
            with self._changed:
                self.kept_bytes += len(part)
                self._changed.notify_all()
        if self.total > self.limit and self.full is not None:
            self.full()
            self.full = None

    @property
    def cut(self) -> int:
        return self.total - self.kept_bytes

    def finish(self) -> None:
        """No more output will come: readers waiting for it end."""
        with self._changed:
            self.done = True
            self._changed.notify_all()

    def read(self) -> Iterator[bytes]:
        """The spooled bytes in order, waiting for more until finish()."""
        offset, fd = 0, self._file.fileno()
        while True:
            with self._changed:
                while offset >= self.kept_bytes and not self.done:
                    self._changed.wait()
                end = self.kept_bytes
            if offset >= end:
                return
            while offset < end:
                data = os.pread(fd, min(READ_BYTES, end - offset), offset)
                offset += len(data)
                yield data

    def close(self) -> None:
        self._file.close()


class CommandSource:
    """The stdout of `argv` (run without a shell, in its own process group) as a log. Its
    stderr, an exit other than 0, a signal, a timeout (the group killed, as run_command
    does) and output past `max_bytes` (the command stopped there) become notes; the hunt
    reports what was read before. `env` None: this process's environment."""

    def __init__(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("a command needs at least a program")
        self.argv = list(argv)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.env = dict(os.environ if env is None else env)
        self.name = name or shlex.join(self.argv)
        self.size: int | None = None
        self.position = 0
        self.notes: list[str] = []
        self._spool = Spool(max_bytes, full=self._stop_soon)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._capped = False
        self._aborted = False

    def _run(self, captured: Captured) -> Coroutine[Any, Any, Captured]:
        return run_local(
            self.argv, env=self.env, cwd=None, stdin=None, time_limit=self.timeout,
            captured=captured,
        )  # fmt: skip

    def chunks(self) -> Iterator[bytes]:
        if self._aborted:
            self.notes.append(f"{self.name}: not run: the hunt was stopped first")
            return
        captured = Captured(stdout=self._spool, stderr=OutputBuffer(STDERR_BYTES))
        outcome: list[BaseException | Captured] = []
        ready = threading.Event()
        # A thread of its own with its own event loop: the hunt is synchronous, and its
        # caller may already run a loop (asyncio.run refuses to nest).
        self._thread = threading.Thread(
            target=self._in_thread, args=(captured, outcome, ready), name="loghunt-command",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        ready.wait()
        if self._aborted:  # abort() came while the loop was starting: its task is known now
            self._cancel()
        try:
            for data in self._spool.read():
                self.position += len(data)
                yield data
        finally:
            self._stop()  # the hunt stopped early (its time budget): the command goes too
        self._say(outcome[0])

    def _in_thread(
        self, captured: Captured, outcome: list[BaseException | Captured], ready: threading.Event
    ) -> None:
        async def main() -> Captured:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            ready.set()
            return await self._run(captured)

        try:
            outcome.append(asyncio.run(main()))
        except BaseException as exc:  # said in a note by the hunt's thread
            outcome.append(exc)
        finally:
            ready.set()
            self._spool.finish()

    def _stop_soon(self) -> None:
        """Past max_bytes: the rest would not be read, so the command is stopped."""
        self._capped = True
        if self._task is not None:
            self._task.cancel()

    def abort(self) -> None:
        """Stop from any thread, without waiting: a running command is killed (its process
        group, by its own thread), one not started yet never starts. For a caller that
        gives up on the hunt (a step's timeout) while another thread still reads."""
        self._aborted = True
        self._cancel()

    def _cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            # Cancelled, run_local and run_remote kill the group at once. The loop may be
            # closing already (the command just ended): then there is nothing to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def _stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            self._cancel()
        thread.join()

    def _say(self, outcome: BaseException | Captured) -> None:
        name = self.name
        if self._aborted:  # its caller gave up on the hunt: the cancellation is no error here
            self.notes.append(f"{name}: killed: the hunt was stopped")
        elif self._capped:
            self.notes.append(
                f"{name}: more than {self.max_bytes} bytes of output: the first {self.max_bytes}"
                " hunted, the command stopped there"
            )
        elif isinstance(outcome, OSError):
            self.notes.append(f"{name}: cannot start {self.argv[0]}: {outcome.strerror or outcome}")
        elif isinstance(outcome, OpsmedicError):  # SSH: unreachable, refused, lost
            self.notes.append(f"{name}: {outcome}")
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            self.notes.extend(f"{name}: {problem}" for problem in _problems(outcome, self.timeout))

    def close(self) -> None:
        self._stop()
        self._spool.close()


def _problems(captured: Captured, timeout: float) -> list[str]:
    problems = []
    if captured.timed_out:
        problems.append(f"timed out after {timeout:g} s; its process group was killed")
    elif captured.signal is not None:
        problems.append(f"killed by {captured.signal}")
    elif captured.exit_code != 0:
        problems.append(f"exit {captured.exit_code}")
    if captured.incomplete:
        problems.append("its output may be short: a process it started held the pipe open")
    if captured.stderr.total:
        problems.append(f"stderr: {captured.stderr.text().strip()}")
    return problems


class SshCommandSource(CommandSource):
    """The same, run on an SSH host through the SSH transport: its connection, its host-key
    rules (known_hosts, never a key accepted unseen) and its remote process-group kill.
    `base_dir` resolves the host's relative key_file and known_hosts (the config's dir);
    `env` is exported on the host (None: nothing, never this process's environment)."""

    def __init__(
        self,
        host: SSHHost,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        base_dir: Path = Path(),
        label: str | None = None,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        where = label or host.host
        super().__init__(
            argv, timeout, max_bytes, env=env or {}, name=name or f"{where}:{shlex.join(argv)}"
        )
        self.host = host
        self.base_dir = base_dir

    def _run(self, captured: Captured) -> Coroutine[Any, Any, Captured]:
        from opsmedic.transport.ssh import run_remote

        return run_remote(
            self.host, self.argv, base_dir=self.base_dir, env=self.env, cwd=None, stdin=None,
            time_limit=self.timeout, output_limit=STDERR_BYTES, captured=captured,
        )  # fmt: skip
