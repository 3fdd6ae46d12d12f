"""docs/probes.md's host rules through the engine: real memory held, a real CPU burner, real mail.

The memory threshold is set from this machine's available memory (available + 1 GiB), so
the event fires without exhausting anything; the CPU threshold is low enough that a
burner alone crosses it. Culprits are limited to the test's own uniquely named processes,
so another session's processes are never named, let alone killed.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from opsmedic.model import Run
from opsmedic.runtime import Runtime, build, build_registry, run_forever
from processes import all_gone, gone, ready_processes
from services import SMTPServer

DOC = Path(__file__).parents[2] / "docs" / "probes.md"
GiB = 2**30
HELD = 200 * 2**20  # what the allocator holds: well under any machine's spare memory
WAIT_S = 60.0  # a bound on waiting for what must happen, not a measured figure
USER = "nobody"  # not root: root's processes are protected from kill_process
BURNER = "#!/bin/sh\necho ready\nwhile :; do :; done\n"
# Touches every page (a zeroed bytearray would stay unbacked and show no RSS).
ALLOCATOR = (
    f"#!/usr/bin/python3\nimport time\nheld = b'x' * {HELD}\n"
    "print('ready', flush=True)\ntime.sleep(600)\n"
)

# Apprise's e-mail plugin imports the standard imghdr module, deprecated on Python 3.11+.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


def documented_rules() -> list[dict[str, Any]]:
    block = re.search(r"```yaml\n# rules/host.yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None, "docs/probes.md lost its host rules example"
    rules: list[dict[str, Any]] = yaml.safe_load(block.group(1))
    return rules


@dataclass
class Culprit:
    proc: subprocess.Popen[bytes]
    name: str


@pytest.fixture
def culprits() -> Iterator[Callable[[str], Culprit]]:
    """start(script) → that script running as `nobody` under a name unique to this test."""
    with tempfile.TemporaryDirectory() as where, ready_processes() as ready:
        Path(where).chmod(0o755)  # pytest's own tmp_path is closed to other users

        def start(script: str) -> Culprit:
            name = f"om-{uuid.uuid4().hex[:8]}"  # within the kernel's 15-character names
            path = Path(where) / name
            path.write_text(script)
            path.chmod(0o755)
            return Culprit(ready([path], USER), name)

        yield start


@pytest.fixture
async def engine(
    tmp_path: Path, smtp_server: SMTPServer, culprits: Callable[[str], Culprit], request: Any
) -> AsyncIterator[tuple[Runtime, Culprit, Culprit]]:
    burner, allocator = culprits(BURNER), culprits(ALLOCATOR)
    rules = documented_rules()
    rules[1]["when"]["for"] = "1s"  # the documented 2m, shortened to keep the test short
    rules[1]["do"][0]["kill_process"]["enforce"] = request.param
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "host.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    smtp = f"{smtp_server.host}:{smtp_server.port}"
    mail = f"mailto://{smtp}?from=opsmedic@example.com&to=oncall@example.com"
    params = {
        "min_available_bytes": psutil.virtual_memory().available + GiB,
        "min_available_percent": None,
        "max_cpu_percent": 5,  # a burner keeps one core busy: at least 1/cores of the host
        "culprits": {"names": [burner.name, allocator.name]},
    }
    config = tmp_path / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'opsmedic.db'}",
        "rules_dir": "rules",
        "api": {"enabled": False},
        "notify": {"oncall": {"urls": [mail]}},
        "probes": [{"name": "box", "type": "host", "interval": "0.5s", "jitter": 0,
                    "params": params}],
    }, sort_keys=False))  # fmt: skip
    rt = build(config, registry=build_registry())
    stop = asyncio.Event()
    task = asyncio.create_task(run_forever(rt, stop))
    try:
        yield rt, burner, allocator
    finally:
        stop.set()
        await task


def finished(rt: Runtime, rule: str) -> list[Run]:
    assert rt.store is not None
    return [r for r in rt.store.list_runs(rule=rule, limit=10) if r.state.finished]


def text_of(mail: Message) -> str:
    """The plain-text body, its folded lines joined back (the rule's `>-` folds too)."""
    for part in mail.walk():
        payload = part.get_payload(decode=True)
        if part.get_content_type() == "text/plain" and isinstance(payload, bytes):
            return " ".join(payload.decode().split())
    return ""


async def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := await asyncio.to_thread(check)):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.1)
    return found


@pytest.mark.parametrize("engine", [False, True], ids=["leashed", "enforced"], indirect=True)
async def test_memory_pressure_mails_the_largest_process_and_a_cpu_spike_stops_the_top_one(
    engine: tuple[Runtime, Culprit, Culprit], smtp_server: SMTPServer
) -> None:
    rt, burner, allocator = engine
    [paged] = await until(lambda: finished(rt, "memory-pressure-page"), "the page")
    assert paged.state == "succeeded", paged.message
    # The SMTP server lives for the session: this test's mail is the one naming its process.
    [text] = await until(
        lambda: [t for t in map(text_of, smtp_server.messages()) if allocator.name in t],
        "the mail",
    )
    assert f"Largest process: {allocator.name} (pid {allocator.proc.pid}," in text
    assert "available_bytes " in text  # the probe's message: the threshold that fired
    assert re.search(r"\b2\d\d\.\d MiB resident", text), text

    [stop] = await until(lambda: finished(rt, "cpu-spike-stop-the-top-process"), "the stop")
    assert stop.state == "succeeded", stop.message
    victim = stop.steps[0].details
    assert victim["pid"] == burner.proc.pid
    if victim["enforce"]:
        assert victim["signal"] == "SIGTERM"
        assert all_gone([burner.proc.pid])
    else:
        assert victim["skipped"] == "leashed"
        assert not gone(burner.proc.pid)
    assert not gone(allocator.proc.pid)
