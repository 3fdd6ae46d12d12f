"""The loghunt action's `ssh:` against a real OpenSSH server: commands run on the host,
files stay local, event values stay one word each, the step given up on kills the remote
command, an unknown host is refused when rules load."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

import pytest
import structlog

from opsmedic.actions import loghunt
from opsmedic.clock import SystemClock
from opsmedic.config.refs import config_names
from opsmedic.config.schema import Config
from opsmedic.errors import ConfigError
from opsmedic.model import Event, Outcome
from opsmedic.plugins import ActionContext
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.templating import Templates, template_context
from processes import all_gone, pids_in, wait_written
from services import SSHServer

PRINT_ARGS = "import sys\nfor a in sys.argv[1:]: print('ERROR arg=' + repr(a))"


def make_ctx(sshd: SSHServer, base_dir: Path) -> ActionContext:
    config = Config.model_validate({"ssh_hosts": {"box": sshd.host_entry()}})
    return ActionContext(
        clock=SystemClock(), log=structlog.get_logger(), ssh_hosts=config.ssh_hosts,
        run_id="run-7", rule="rule-1", target="web-1", base_dir=base_dir,
    )  # fmt: skip


async def hunt(ctx: ActionContext, event: Event, raw: dict[str, Any]) -> Outcome:
    params = Templates().render(raw, template_context(event, "rule-1", "run-7"))
    return await loghunt.run(loghunt.Params.model_validate(params), ctx)


async def test_commands_run_on_the_host_and_files_stay_local(
    sshd: SSHServer, shared_dir: Path, tmp_path: Path
) -> None:
    remote = shared_dir / "remote.log"
    remote.write_text("ERROR on the host\n")
    (tmp_path / "local.log").write_text("ERROR here\n")
    env = "import os; print('ERROR run', os.environ.get('OPSMEDIC_RUN_ID'))"
    outcome = await hunt(make_ctx(sshd, tmp_path), Event(source="alert"), {
        "ssh": "box", "files": ["local.log"], "mode": "exact",
        "commands": [{"argv": ["cat", str(remote)]}, {"argv": ["python3", "-c", env]}],
    })  # fmt: skip
    assert outcome.ok, outcome.message
    assert [(e["key"], e["first"]["source"]) for e in outcome.details["events"]] == [
        ("ERROR here", str(tmp_path / "local.log")),
        ("ERROR on the host", f"box:cat {remote}"),
        ("ERROR run run-7", "box:" + shlex.join(["python3", "-c", env])),
    ]


async def test_hostile_event_values_reach_the_remote_program_as_one_word_each(
    sshd: SSHServer, shared_dir: Path, tmp_path: Path
) -> None:
    marker = shared_dir / "pwned"
    values = ["; rm -rf /", "$(id)", "../../x", f"; touch {marker}", f"$(touch {marker})"]
    event = Event(source="alert", labels={f"v{i}": v for i, v in enumerate(values)})
    words = [f"{{{{ event.labels.v{i} }}}}" for i in range(len(values))]
    outcome = await hunt(make_ctx(sshd, tmp_path), event, {
        "ssh": "box", "mode": "exact", "context": 0,
        "commands": [{"argv": ["python3", "-c", PRINT_ARGS, *words]}],
    })  # fmt: skip
    assert outcome.ok, outcome.message
    assert [e["key"] for e in outcome.details["events"]] == [f"ERROR arg={v!r}" for v in values]
    assert outcome.details["stats"]["notes"] == []
    assert not marker.exists()


async def test_a_cancelled_step_kills_the_remote_command(
    sshd: SSHServer, shared_dir: Path, tmp_path: Path
) -> None:
    pids = shared_dir / "pids"
    script = (
        f"import os; open({str(pids)!r}, 'w').write(str(os.getpid())); "
        "os.execvp('sleep', ['sleep', '600'])"
    )
    ctx = make_ctx(sshd, tmp_path)
    ctx.timeout = 600
    raw = {"ssh": "box", "commands": [{"argv": ["python3", "-c", script]}]}
    task = asyncio.create_task(hunt(ctx, Event(source="alert"), raw))
    await asyncio.to_thread(wait_written, pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all_gone(pids_in(pids))


def test_an_unknown_ssh_host_is_refused_when_rules_load(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "- name: a\n  when: {source: x}\n  do:\n"
        "    - loghunt: {ssh: bx, commands: [{argv: [uptime]}]}\n"
    )
    names = config_names({"ssh_hosts": {"box": {"host": "10.0.0.5", "user": "u"}}})
    with pytest.raises(ConfigError) as info:
        load_rules(rules, build_registry(), names)
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{rules}:4:22: [0].do[0].loghunt.ssh: unknown ssh host 'bx' (did you mean box?)"
    )
