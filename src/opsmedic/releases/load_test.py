"""A bounded load test: N GETs at a fixed rate, judged by error ratio and p95 latency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opsmedic.config.gates import LoadGate
from opsmedic.transport.http import http_client

# Requests outstanding at once: httpx's pool holds 100 connections, and requests queued in it
# past that cost it time per request (the test would measure itself). A service too slow to
# keep up holds the pacing back instead; what the timeout then leaves unsent are errors.
MAX_IN_FLIGHT = 100


async def load_test(gate: LoadGate) -> tuple[bool, str, dict[str, Any]]:
    """(passed, message, figures). A request that got no answer, or a 5xx, is an error; one
    still unanswered at the gate's timeout is an error too, so a hung service fails."""
    import httpx

    latencies: list[float] = []
    errors = 0

    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            response = await client.get(gate.url, timeout=gate.request_timeout)
        except httpx.HTTPError:
            return
        finally:
            in_flight.release()
        latencies.append(time.perf_counter() - t0)
        if response.status_code >= 500:
            errors += 1

    started = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    async with http_client(verify_tls=True, timeout=gate.request_timeout) as client:
        try:
            async with asyncio.timeout(gate.timeout):
                for i in range(gate.requests):
                    # Paced against the start, so a slow event loop catches up, not drifts.
                    delay = started + i / gate.rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await in_flight.acquire()
                    task = asyncio.create_task(one(client))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.gather(*tasks)
        except TimeoutError:
            pass  # what is unanswered by now counts as errors below
        finally:
            # Past the timeout, or cancelled from outside: no request outlives the test.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    # Every request without an answer (failed, or cut off by the timeout) is an error too.
    errors += gate.requests - len(latencies)
    ratio = errors / gate.requests
    p95 = _p95(latencies)
    figures = {"requests": gate.requests, "rate": gate.rate, "errors": errors,
               "error_ratio": round(ratio, 4), "p95_s": p95,
               "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
    problems = []
    if ratio > gate.max_error_ratio:
        problems.append(f"error ratio {ratio:.2%} > {gate.max_error_ratio:.2%}")
    if p95 is None or p95 >= gate.max_p95:
        shown = "none answered" if p95 is None else f"{p95 * 1000:.0f} ms"
        problems.append(f"p95 {shown} >= {gate.max_p95 * 1000:.0f} ms")
    said = f"{gate.requests} requests at {gate.rate:g}/s"
    if problems:
        return False, f"{said}: " + "; ".join(problems), figures
    return True, f"{said}: {ratio:.2%} errors, p95 {(p95 or 0) * 1000:.0f} ms", figures


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4)
