"""Feature flags: evaluation per call, and a flip's propagation to reader processes.

    .venv/bin/python bench/flags.py [--rounds 15] [--calls 20000] [--flips 100]
                                    [--unleash-flips 10 | --no-unleash]
                                    [--e2e-trials 20] [--probe-interval 1.0]

(a) One flag with a targeting rule (`plan equals gold` serves on) and a 30 % rollout,
evaluated for a context the rule lets through to the rollout, per call: through opsmedic's
`FlagClient` (over a loaded `RedisFlagCache`: no network), through the OpenFeature SDK with
opsmedic's provider, and through the SDK with its own `InMemoryProvider` holding the same
flag (its context evaluator runs the same rule and Unleash's bucket), side by side; best of
`--rounds` rounds of `--calls` calls. The three are first checked to serve the same values.
(b) bench/_flags_propagation.py: 4 reader processes hold a FlagClient over a RedisFlagCache,
a writer flips the flag `--flips` times; p50/p99 until every reader's client serves the new
value, and the raw PUBLISH floor between the same processes. The peer, bench/_unleash_peer.py:
a real unleash-server with UnleashClient readers at their default refresh (15 s), measured
the same way (`--unleash-flips`, each up to ≈20 s). (c) bench/_flags_end_to_end.py: end to
end, a real `opsmedic run` whose http probe (every `--probe-interval` s) sees the demo shop's
new checkout fail and whose rule turns flag new_checkout off, until the shop serves the old
checkout; `--e2e-trials` times, the shop reading through opsmedic's change stream (the
embedded default) and through Redis (`flag_store: redis`); p50/p95 against the goal of one
probe interval + 1 s. Figures are reported, never asserted; the last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from opsmedic.flags.bucket import in_rollout
from opsmedic.flags.client import FlagClient
from opsmedic.flags.openfeature import OpsmedicProvider
from opsmedic.flags.redis_cache import RedisFlagCache
from opsmedic.flags.redis_store import RedisFlagStore

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import _flags_end_to_end  # noqa: E402
import _flags_propagation  # noqa: E402
from _proc import log  # noqa: E402

KEY = "new_checkout"
PERCENTAGE = 30
FLAG = {"key": KEY, "default": "off", "rollout": {"percentage": PERCENTAGE},
        "rules": [{"when": [{"attribute": "plan", "op": "equals", "value": "gold"}],
                   "serve": "on"}]}  # fmt: skip
CONTEXT = {"targetingKey": "user-1", "plan": "bronze"}  # past the rule, into the rollout


def _in_memory(flag: InMemoryFlag[bool], context: EvaluationContext) -> FlagResolutionDetails[bool]:
    """The same flag in the SDK's own provider: the rule, then Unleash's bucket."""
    if context.attributes.get("plan") == "gold":
        return FlagResolutionDetails(True, reason=Reason.TARGETING_MATCH, variant="on")
    if in_rollout(PERCENTAGE, str(context.targeting_key), KEY):
        return FlagResolutionDetails(True, reason=Reason.SPLIT, variant="on")
    return FlagResolutionDetails(False, reason=Reason.DEFAULT, variant="off")


def _best_us(call: Callable[[], object], rounds: int, calls: int) -> float:
    return round(min(timeit.repeat(call, number=calls, repeat=rounds)) / calls * 1e6, 2)


def evaluation(url: str, rounds: int, calls: int) -> dict[str, float]:
    """Part (a): microseconds per evaluation through each of the three."""

    async def put() -> None:
        async with RedisFlagStore(url) as store:
            await store.put(KEY, FLAG)

    asyncio.run(put())
    with RedisFlagCache(url) as cache:
        client = FlagClient(cache)
        if not client.wait_ready(10.0):
            raise RuntimeError(f"flags not loaded from {url}")
        api.set_provider_and_wait(OpsmedicProvider(client))
        in_memory = InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=_in_memory)
        api.set_provider_and_wait(InMemoryProvider({KEY: in_memory}), domain="inmemory")
        ours, theirs = api.get_client(), api.get_client("inmemory")
        try:
            # The same answers first, so the three measure the same work.
            for i in range(2000):
                plan = "gold" if i % 10 == 0 else "bronze"
                context = {"targetingKey": f"user-{i}", "plan": plan}
                of_context = EvaluationContext(f"user-{i}", {"plan": plan})
                values = {client.boolean(KEY, False, context),
                          ours.get_boolean_value(flag_key=KEY, default_value=False,
                                                 evaluation_context=of_context),
                          theirs.get_boolean_value(flag_key=KEY, default_value=False,
                                                   evaluation_context=of_context)}  # fmt: skip
                if len(values) != 1:
                    raise RuntimeError(f"the three disagree on {context}")
            of_context = EvaluationContext(CONTEXT["targetingKey"], {"plan": CONTEXT["plan"]})
            return {
                "client": _best_us(lambda: client.boolean(KEY, False, CONTEXT), rounds, calls),
                "openfeature": _best_us(lambda: ours.get_boolean_value(
                    flag_key=KEY, default_value=False, evaluation_context=of_context),
                    rounds, calls),
                "openfeature_inmemory": _best_us(lambda: theirs.get_boolean_value(
                    flag_key=KEY, default_value=False, evaluation_context=of_context),
                    rounds, calls),
            }  # fmt: skip
        finally:
            api.clear_providers()


def unleash(flips: int) -> tuple[dict[str, Any] | None, str]:
    """The peer's figures, or None and why not."""
    try:
        import _unleash_peer

        with _unleash_peer.running_unleash() as peer:
            found = _unleash_peer.measure(peer, flips=flips)
    except Exception as exc:  # the peer may not run here (no Node, no npm registry)
        return None, f"the Unleash peer did not run: {type(exc).__name__}: {exc}"
    note = (f"{found['server']} with {found['readers']} {found['client']} readers at its "
            f"default refresh ({found['refresh_s']:g} s), {flips} flips")  # fmt: skip
    return found, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--unleash-flips", type=int, default=10)
    parser.add_argument("--no-unleash", action="store_true", help="leave the peer out")
    parser.add_argument("--e2e-trials", type=int, default=20)
    parser.add_argument("--probe-interval", type=float, default=1.0, help="seconds, (c)")
    args = parser.parse_args()
    if min(args.rounds, args.calls, args.flips, args.readers, args.unleash_flips,
           args.e2e_trials) < 1:  # fmt: skip
        parser.error("--rounds, --calls, --flips, --readers, --unleash-flips and --e2e-trials "
                     "must be >= 1")  # fmt: skip
    if not 0.1 <= args.probe_interval <= 10:
        parser.error("--probe-interval must be 0.1 to 10 seconds")
    from _redis import throwaway_redis

    with throwaway_redis("opsmedic-bench-flags-") as (url, _):
        log(f"(a) evaluation: best of {args.rounds} rounds of {args.calls} calls")
        eval_us = evaluation(url, args.rounds, args.calls)
        log(f"(a) {eval_us}")
        propagation = _flags_propagation.measure(url, readers=args.readers,
                                                 flips=args.flips)  # fmt: skip
        end_to_end = {}
        for name, via in (("api_stream", None), ("redis", url)):
            log(f"(c) end to end through {name}: {args.e2e_trials} trials, probe every "
                f"{args.probe_interval:g} s")  # fmt: skip
            end_to_end[name] = _flags_end_to_end.measure(
                trials=args.e2e_trials, interval_s=args.probe_interval, redis_url=via
            )
    if args.no_unleash:
        peer, note = None, "left out (--no-unleash)"
    else:
        peer, note = unleash(args.unleash_flips)
    result = {
        "eval_us": eval_us,
        "propagation_ms": propagation["propagation_ms"],
        "publish_floor_ms": propagation["publish_floor_ms"],
        "p99_over_floor": propagation["p99_over_floor"],
        "unleash_ms": peer["unleash_ms"] if peer else None,
        "unleash_note": note,
        "end_to_end_s": end_to_end,
        "readers": args.readers,
        "flips": args.flips,
        "goals": {
            "client_le_5us": eval_us["client"] <= 5,
            **propagation["goals"],
            "end_to_end_p95_le_probe_interval_plus_1s": all(
                found["p95_le_goal"] for found in end_to_end.values()
            ),
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
