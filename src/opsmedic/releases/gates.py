"""Promotion gates: earlier environments passed, CI green, a command and a load test pass."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opsmedic.config.gates import CiGate, CommandGate, Gate
from opsmedic.config.services import ServiceConfig
from opsmedic.releases.load_test import load_test
from opsmedic.transport.http import http_client
from opsmedic.transport.output import Captured
from opsmedic.transport.process import run_local

# Bytes kept per stream of a command gate's output (head and tail), and shown of a CI body.
OUTPUT_LIMIT = 8192
BODY_SHOWN = 300

# Did `version` pass verification in environment `env`?
PassedIn = Callable[[str, str], Awaitable[bool]]


async def run_gates(
    config: ServiceConfig, env: str, version: str, passed_in: PassedIn
) -> tuple[list[dict[str, Any]], str]:
    """Every gate of `env`, in order, each recorded; ([results], "" or the first failures)."""
    results: list[dict[str, Any]] = []
    for required in config.requires_of(env):
        ok = await passed_in(version, required)
        said = "passed" if ok else "has not passed"
        results.append({"name": f"requires:{required}", "kind": "requires", "passed": ok,
                        "message": f"{version} {said} verification in {required}"})  # fmt: skip
    for gate in config.gates_of(env):
        t0 = time.perf_counter()
        passed, message, details = await _run(gate)
        results.append({"name": gate.name, "kind": gate.kind, "passed": passed,
                        "message": message, "seconds": round(time.perf_counter() - t0, 3),
                        **details})  # fmt: skip
    failed = [f"gate {r['name']}: {r['message']}" for r in results if not r["passed"]]
    return results, "; ".join(failed)


async def _run(gate: Gate) -> tuple[bool, str, dict[str, Any]]:
    if gate.ci is not None:
        return await _ci(gate.ci)
    if gate.command is not None:
        return await _command(gate.command)
    assert gate.load is not None  # the config requires exactly one kind
    return await load_test(gate.load)


async def _ci(gate: CiGate) -> tuple[bool, str, dict[str, Any]]:
    import httpx

    try:
        async with http_client(verify_tls=True, timeout=gate.timeout) as client:
            response = await client.get(gate.url)
    except httpx.HTTPError as exc:
        return False, f"{gate.url}: no answer: {type(exc).__name__}: {exc}"[:BODY_SHOWN], {}
    details = {"status": response.status_code}
    if response.status_code not in gate.expect_status:
        return False, f"{gate.url} answered {response.status_code}", details
    if gate.field is None:
        return True, f"{gate.url} answered {response.status_code}", details
    try:
        found: Any = response.json()
        for key in gate.field.split("."):
            found = found[key]
    except (ValueError, KeyError, IndexError, TypeError):
        shown = response.text[:BODY_SHOWN]
        return False, f"{gate.url}: no {gate.field!r} in the JSON body: {shown!r}", details
    if found != gate.value:
        return False, f"{gate.url}: {gate.field} is {found!r}, not {gate.value!r}", details
    return True, f"{gate.url}: {gate.field} is {found!r}", details


async def _command(gate: CommandGate) -> tuple[bool, str, dict[str, Any]]:
    captured = Captured.bounded(OUTPUT_LIMIT)
    try:
        await run_local(gate.argv, env=dict(os.environ), cwd=str(gate.cwd), stdin=None,
                        time_limit=gate.timeout, captured=captured)  # fmt: skip
    except OSError as exc:
        return False, f"cannot run {gate.argv[0]}: {exc}", {}
    details = {"exit_code": captured.exit_code, "output": captured.labelled()}
    if captured.timed_out:
        return False, f"{gate.argv[0]} ran over {gate.timeout:g}s and was killed", details
    if captured.exit_code != 0:
        end = captured.signal or f"exit code {captured.exit_code}"
        return False, f"{gate.argv[0]} failed ({end})", details
    return True, f"{gate.argv[0]} exited 0", details
