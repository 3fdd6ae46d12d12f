"""The loghunt action's sources beyond files: commands' output and units' journals, here or
on an SSH host, and stopping them when the step is given up on."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsmedic.actions.run_command import no_nul, run_env, unknown_host
from opsmedic.config.types import PositiveDuration
from opsmedic.errors import HuntInputError
from opsmedic.plugins import ActionContext
from opsmedic.templating import Rendered, UnsafeTemplate, is_template

if TYPE_CHECKING:
    from opsmedic.loghunt import CommandSource, JournalSource

    Running = CommandSource | JournalSource

T = TypeVar("T")
# A unit name as systemd spells one (systemd.unit(5)); journalctl --unit= also takes a glob,
# which a rule may write but an event may not choose (`*` would be every unit's journal).
_UNIT = re.compile(r"[A-Za-z0-9:_.\\@-]{1,256}")
_UNIT_GLOB = re.compile(r"[A-Za-z0-9:_.\\@*?\[\]-]{1,256}")
# After the step is given up on: how long its commands get to be killed (their group: SIGKILL
# at once, then reaped; over SSH a round trip) before the step's task ends all the same.
ABORT_WAIT_S = 5.0
DEFAULT_MAX_BYTES = 256 << 20  # = loghunt.commands' (tested): the hunt is imported only to run


class CommandParams(BaseModel):
    """One command whose stdout is a log: an argv (no shell), a timeout, an output cap."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    argv: list[str] = Field(min_length=1, description="the program and its arguments; no shell")
    timeout: PositiveDuration | None = Field(None, description="seconds (default: the step's)")
    max_bytes: int = Field(
        DEFAULT_MAX_BYTES, ge=1, description="of its output hunted; past it, it is stopped"
    )

    @field_validator("argv", mode="before")
    @classmethod
    def _written_in_the_rule(cls, value: Any) -> Any:
        # An event may fill in arguments, each one word; never choose the program or the
        # number of words (a template rendering to a whole list).
        if isinstance(value, str) and is_template(value):
            raise UnsafeTemplate("argv is a list written in the rule, never taken from an event")
        if isinstance(value, list) and value and isinstance(value[0], str):
            first = value[0]
            if isinstance(first, Rendered) or is_template(first):
                raise UnsafeTemplate("argv[0]: the program is written in the rule, never "
                                     "taken from an event")  # fmt: skip
        return value

    @field_validator("argv")
    @classmethod
    def _no_nul(cls, argv: list[str]) -> list[str]:
        no_nul(argv)
        return argv


class JournalParams(BaseModel):
    """One unit's journal (journalctl --unit=UNIT over the window)."""

    model_config = ConfigDict(extra="forbid")

    unit: str = Field(description="a unit name such as nginx.service; may be templated")
    timeout: PositiveDuration | None = Field(None, description="seconds (default: the step's)")
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1, description="of journalctl's JSON read")

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_name(cls, unit: Any) -> Any:
        # Before pydantic makes it a plain str: whether it was rendered is known only now.
        if not isinstance(unit, str):
            return unit
        rendered = isinstance(unit, Rendered)
        if unit.startswith("-") or not (_UNIT if rendered else _UNIT_GLOB).fullmatch(unit):
            example = "nginx.service" if rendered else "nginx.service, or app-*.service"
            from_event = " (rendered from an event: no glob characters)" if rendered else ""
            raise ValueError(f"{unit!r} is not a unit name{from_event}: such as {example}")
        return unit


def running_sources(
    commands: list[CommandParams],
    journal: list[JournalParams],
    ssh: str | None,
    ctx: ActionContext,
    since: datetime | None,
    budget: float,
) -> list[Running]:
    """A source per command, then per unit, on `ssh`'s host when given; nothing started yet.
    Their environment is run_command's (a short pass-through list and the run's facts, never
    the daemon's secrets); a timeout not given is the hunt's budget. HuntInputError for an
    unknown host (a templated one is only known now)."""
    from opsmedic.loghunt import CommandSource, JournalSource, SshCommandSource

    host = None
    if ssh is not None:
        host = ctx.ssh_hosts.get(ssh)
        if host is None:
            raise HuntInputError(f"ssh: {unknown_host(ssh, ctx)}")
    env = run_env(ctx, local=host is None)
    found: list[Running] = []
    for c in commands:
        limits = (c.timeout or budget, c.max_bytes)
        if host is None:
            found.append(CommandSource(c.argv, *limits, env=env))
        else:
            found.append(SshCommandSource(host, c.argv, *limits, base_dir=ctx.base_dir,
                                          label=ssh, env=env))  # fmt: skip
    for j in journal:
        found.append(JournalSource(
            j.unit, since, None, timeout=j.timeout or budget, max_bytes=j.max_bytes,
            host=host, label=ssh, base_dir=ctx.base_dir, env=env,
        ))  # fmt: skip
    return found


async def in_thread(work: Callable[[threading.Event], T], running: list[Running]) -> T:
    """`work(stop)` on a worker thread. If the step is given up on (its timeout, the engine
    stopping), the thread cannot be cancelled: `stop` is set, every command is killed (or
    never started), and the thread gets ABORT_WAIT_S to see it before the cancellation goes
    on, so no command outlives its step."""
    stop = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(None, work, stop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        for source in running:
            source.abort()
        await asyncio.wait([future], timeout=ABORT_WAIT_S)
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: the step is gone, nobody else will read it
        raise
