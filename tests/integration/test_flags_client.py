"""FlagClient and the OpenFeature provider over a real Redis: typed values, the right reasons
and codes, the caller's default on every bad input, stale values while Redis is away, and
change notification; the provider called through the SDK by keyword, as applications do."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode as OFCode
from openfeature.flag_evaluation import Reason as OFReason

from opsmedic.clock import ManualClock
from opsmedic.flags.client import FlagClient, Kind
from opsmedic.flags.evaluate import ErrorCode, Reason
from opsmedic.flags.model import Flag
from opsmedic.flags.openfeature import OpsmedicProvider
from opsmedic.flags.redis_cache import RedisFlagCache
from opsmedic.flags.redis_store import RedisFlagStore

if __package__:
    from ..services import free_port
    from ..services_redis import RedisServer
else:
    from services import free_port
    from services_redis import RedisServer

WAIT_S = 15.0  # bounds a wait for a real signal on a loaded machine; no timing is asserted

CHECKOUT = {"key": "new_checkout", "default": "off", "rollout": {"percentage": 30},
            "rules": [{"when": [{"attribute": "plan", "op": "equals", "value": "gold"}],
                       "serve": "on"}]}  # fmt: skip
THEME = {"key": "theme", "type": "string", "variants": {"classic": "#222", "bright": "#f60"},
         "default": "classic"}  # fmt: skip
LIMIT = {"key": "limit", "type": "number", "variants": {"low": 10, "half": 2.5},
         "default": "low", "rules": [{"when": [{"attribute": "plan", "op": "equals",
                                                "value": "half"}], "serve": "half"}]}  # fmt: skip
LAYOUT = {"key": "layout", "type": "object", "variants": {"a": {"cols": [1, 2]}}, "default": "a"}
OFF = {"key": "dark_mode", "enabled": False}
FLAGS = [CHECKOUT, THEME, LIMIT, LAYOUT, OFF]


def _doc(doc: dict[str, Any]) -> dict[str, Any]:
    return Flag.model_validate(doc).model_dump(mode="json")


@pytest.fixture
async def writer(redis_server: RedisServer) -> AsyncIterator[RedisFlagStore]:
    async with RedisFlagStore(redis_server.url) as flags:
        for doc in FLAGS:
            await flags.put(doc["key"], _doc(doc))
        yield flags


@pytest.fixture
def open_client(writer: RedisFlagStore) -> Iterator[Callable[..., FlagClient]]:
    caches: list[RedisFlagCache] = []

    def start(url: str, *, ready: bool = True, **options: Any) -> FlagClient:
        cache = RedisFlagCache(url, backoff_s=(0.02, 0.1), **options)
        client = FlagClient(cache)  # before start: it sees every change
        caches.append(cache.start())
        assert not ready or client.wait_ready(WAIT_S)
        return client

    yield start
    for cache in caches:
        cache.close()


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {WAIT_S} s"
        await asyncio.sleep(0.01)


def test_typed_values_with_their_reasons(redis_server: RedisServer, open_client: Any) -> None:
    client: FlagClient = open_client(redis_server.url)
    gold = {"targetingKey": "user-1", "plan": "gold"}
    assert client.boolean("new_checkout", False, gold) is True
    found = client.details("new_checkout", False, gold)
    assert (found.value, found.variant, found.reason, found.error_code) == (
        True, "on", Reason.TARGETING_MATCH, None
    )  # fmt: skip
    assert (found.version, found.staleness_s) == (1, None)
    # Sticky: the rollout's 30 % are the same users every time; everyone else: the default.
    split = [client.details("new_checkout", False, {"targetingKey": f"u{i}"}) for i in range(200)]
    assert {d.reason for d in split} == {Reason.SPLIT, Reason.DEFAULT}
    assert all(d.value is (d.reason is Reason.SPLIT) for d in split)
    assert client.string("theme", "none") == "#222"
    assert client.details("theme", "none").reason is Reason.STATIC
    assert client.integer("limit", 0) == 10
    assert client.float("limit", 0.0) == 10.0 and isinstance(client.float("limit", 0.0), float)
    assert client.number("limit", 0, {"plan": "half"}) == 2.5
    value = client.object("layout", {})
    assert value == {"cols": [1, 2]}
    value["cols"].append(3)  # type: ignore[call-overload,union-attr]
    assert client.object("layout", {}) == {"cols": [1, 2]}  # a copy: the next reader's is whole
    off = client.details("dark_mode", True)
    assert (off.value, off.reason) == (False, Reason.DISABLED)


def test_no_request_parses_a_flag_of_the_first_load(
    redis_server: RedisServer, open_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wait_ready parses the first load; after it, the request path only evaluates (a flag
    with a costly pattern would otherwise make the first request that reads it pay)."""
    client: FlagClient = open_client(redis_server.url)  # waits until ready

    def parse(entry: Any) -> Any:
        raise AssertionError(f"{entry.key} parsed on the request path")

    monkeypatch.setattr("opsmedic.flags.client._parsed", parse)
    defaults: list[Any] = [False, "x", 0.0, {}, True]  # one of each flag's type, in FLAGS' order
    user = {"targetingKey": "u"}
    found = [client.details(d["key"], v, user) for d, v in zip(FLAGS, defaults, strict=True)]
    assert [(f.error_code, f.error_message) for f in found] == [(None, None)] * len(FLAGS)
    assert client.boolean("new_checkout", False, {"targetingKey": "u", "plan": "gold"})


@pytest.mark.parametrize(
    ("key", "default", "context", "kind", "code", "message"),
    [
        ("nope", True, None, Kind.BOOLEAN, ErrorCode.FLAG_NOT_FOUND, "no flag 'nope'"),
        (
            "theme",
            True,
            None,
            Kind.BOOLEAN,
            ErrorCode.TYPE_MISMATCH,
            "flag 'theme' is a string flag, asked for a boolean",
        ),
        ("new_checkout", "x", None, Kind.STRING, ErrorCode.TYPE_MISMATCH, "boolean flag"),
        (
            "limit",
            7,
            {"plan": "half"},
            Kind.INTEGER,
            ErrorCode.TYPE_MISMATCH,
            "flag 'limit' served 2.5, not an integer",
        ),
        ("layout", 1.5, None, Kind.FLOAT, ErrorCode.TYPE_MISMATCH, "object flag"),
        # Malformed contexts: not a mapping, non-string keys, nested junk where a rule
        # compares, no key for the rollout.
        (
            "new_checkout",
            False,
            ["plan", "gold"],
            Kind.BOOLEAN,
            ErrorCode.INVALID_CONTEXT,
            "not a mapping",
        ),
        (
            "new_checkout",
            False,
            {1: "x", (2, 3): [], "plan": {"nested": [object()]}},
            Kind.BOOLEAN,
            ErrorCode.INVALID_CONTEXT,
            "attribute 'plan'",
        ),
        (
            "new_checkout",
            False,
            {"plan": "bronze"},
            Kind.BOOLEAN,
            ErrorCode.TARGETING_KEY_MISSING,
            "'targetingKey'",
        ),
        (
            "new_checkout",
            False,
            {"targetingKey": {"id": 1}},
            Kind.BOOLEAN,
            ErrorCode.INVALID_CONTEXT,
            "'targetingKey' is dict",
        ),
        ("theme", object(), None, None, ErrorCode.GENERAL, "no flag type"),
    ],
)
def test_every_bad_input_serves_the_callers_default_with_reason_error(
    redis_server: RedisServer, open_client: Any, key: str, default: Any, context: Any,
    kind: Kind | None, code: ErrorCode, message: str,
) -> None:  # fmt: skip
    client: FlagClient = open_client(redis_server.url)
    found = client.details(key, default, context, kind)
    assert (found.value, found.reason, found.error_code) == (default, Reason.ERROR, code)
    assert found.variant is None
    assert found.error_message is not None and message in found.error_message


async def test_garbage_written_by_hand_is_a_parse_error_and_the_rest_still_serve(
    redis_server: RedisServer, writer: RedisFlagStore, open_client: Any
) -> None:
    # A stored value that is not opsmedic's entry at all (the cache skips it), one in
    # opsmedic's form whose document is no flag, and one that names another flag.
    redis_server.cli("HSET", "opsmedic:flags", "theme", "not json")
    redis_server.cli("HSET", "opsmedic:flags", "limit", '{"version": 99, "doc": '
                     '{"key": "limit", "rollout": {"percentage": 300}}}')  # fmt: skip
    await writer.put("layout", {"key": "theme"})
    client: FlagClient = open_client(redis_server.url)
    expected = {
        "theme": "skipped",
        "limit": "flag 'limit' (version 99) is not a valid flag: rollout.percentage: Input "
                 "should be less than or equal to 100",
        "layout": "its document names the flag 'theme'",
    }  # fmt: skip
    for key, message in expected.items():
        found = client.details(key, "d", kind=Kind.STRING)
        assert (found.value, found.reason, found.error_code) == ("d", Reason.ERROR,
                                                                 ErrorCode.PARSE_ERROR)  # fmt: skip
        assert found.error_message is not None and message in found.error_message
    assert client.details("dark_mode", True).reason is Reason.DISABLED


async def test_stale_values_are_served_with_their_age_and_changes_are_told(
    redis_server: RedisServer, writer: RedisFlagStore, open_client: Any
) -> None:
    clock = ManualClock()
    client: FlagClient = open_client(redis_server.url, clock=clock)
    seen: queue.Queue[tuple[str, int, bool]] = queue.Queue()

    def on_change(key: str, version: int) -> None:
        # Called once the client serves the new value.
        seen.put((key, version, client.boolean("new_checkout", True, {"plan": "gold"})))

    client.on_change(on_change)
    client.on_change(lambda key, version: 1 / 0)  # a failing listener harms no other
    await writer.put("new_checkout", _doc({**CHECKOUT, "enabled": False}))
    assert seen.get(timeout=WAIT_S) == ("new_checkout", 6, False)
    redis_server.stop()
    await until(lambda: client.source.staleness_s is not None, "stale")
    clock.advance(4.0)
    found = client.details("new_checkout", True, {"plan": "gold"})
    assert (found.value, found.reason, found.staleness_s) == (False, Reason.DISABLED, 4.0)
    redis_server.start()
    async with RedisFlagStore(redis_server.url) as again:  # the first one's connection died
        await again.put("new_checkout", _doc(CHECKOUT))
    assert seen.get(timeout=WAIT_S) == ("new_checkout", 7, True)
    # A change found by the resync is told before the cache calls itself current again.
    await until(lambda: client.details("new_checkout", False).staleness_s is None, "current")


def test_before_the_first_load_it_is_not_ready(open_client: Any) -> None:
    client: FlagClient = open_client(f"redis://127.0.0.1:{free_port()}/0", ready=False)
    found = client.details("new_checkout", True)
    assert (found.value, found.reason, found.error_code) == (True, Reason.ERROR,
                                                             ErrorCode.PROVIDER_NOT_READY)  # fmt: skip
    assert found.staleness_s is not None


@pytest.fixture
def openfeature() -> Iterator[None]:
    yield
    api.clear_providers()


async def test_the_provider_through_the_sdk_by_keyword(
    redis_server: RedisServer, writer: RedisFlagStore, open_client: Any, openfeature: None
) -> None:
    redis_server.cli("HSET", "opsmedic:flags", "junk", '{"version": 99, "doc": {"x": 1}}')
    client: FlagClient = open_client(redis_server.url)
    api.set_provider_and_wait(OpsmedicProvider(client))
    of = api.get_client()
    gold = EvaluationContext(targeting_key="user-1", attributes={"plan": "gold"})
    found = of.get_boolean_details(flag_key="new_checkout", default_value=False,
                                   evaluation_context=gold)  # fmt: skip
    assert (found.value, found.variant, found.reason, found.error_code) == (
        True, "on", OFReason.TARGETING_MATCH, None
    )  # fmt: skip
    assert found.flag_metadata == {"version": 1}
    # targeting_key is the rollout's key: the same split as the client's own.
    for i in range(50):
        user = EvaluationContext(targeting_key=f"u{i}")
        split = of.get_boolean_details(flag_key="new_checkout", default_value=False,
                                       evaluation_context=user)  # fmt: skip
        own = client.details("new_checkout", False, {"targetingKey": f"u{i}"})
        assert (split.value, split.reason) == (own.value, str(own.reason))
    assert of.get_string_value(flag_key="theme", default_value="x") == "#222"
    assert of.get_string_details(flag_key="theme", default_value="x").reason == OFReason.STATIC
    assert of.get_integer_value(flag_key="limit", default_value=0) == 10
    assert of.get_float_value(flag_key="limit", default_value=0.0) == 10.0
    assert of.get_object_value(flag_key="layout", default_value={}) == {"cols": [1, 2]}
    assert of.get_boolean_details(flag_key="dark_mode", default_value=True).reason == "DISABLED"
    errors = [
        (of.get_boolean_details(flag_key="nope", default_value=True), OFCode.FLAG_NOT_FOUND),
        (of.get_boolean_details(flag_key="theme", default_value=True), OFCode.TYPE_MISMATCH),
        (of.get_integer_details(flag_key="limit", default_value=3,
                                evaluation_context=EvaluationContext(attributes={"plan": "half"})),
         OFCode.TYPE_MISMATCH),
        (of.get_boolean_details(flag_key="new_checkout", default_value=True,
                                evaluation_context=EvaluationContext(attributes={
                                    "plan": {"deep": ["junk"]}})),
         OFCode.INVALID_CONTEXT),
        (of.get_boolean_details(flag_key="new_checkout", default_value=True),
         OFCode.TARGETING_KEY_MISSING),
    ]  # fmt: skip
    for details, code in errors:
        assert (details.reason, details.error_code) == (OFReason.ERROR, code), details
        assert details.value in (True, 3)
    garbage = of.get_string_details(flag_key="junk", default_value="x")
    assert (garbage.value, garbage.reason, garbage.error_code) == ("x", OFReason.ERROR,
                                                                   OFCode.PARSE_ERROR)  # fmt: skip


async def test_the_provider_reports_stale_values_and_changes(
    redis_server: RedisServer, writer: RedisFlagStore, open_client: Any, openfeature: None
) -> None:
    clock = ManualClock()
    client: FlagClient = open_client(redis_server.url, clock=clock)
    api.set_provider_and_wait(OpsmedicProvider(client))
    changed: queue.Queue[list[str] | None] = queue.Queue()

    def handler(details: EventDetails) -> None:
        changed.put(details.flags_changed)

    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, handler)
    try:
        await writer.put("theme", _doc({**THEME, "default": "bright"}))
        assert changed.get(timeout=WAIT_S) == ["theme"]
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, handler)
    redis_server.stop()
    await until(lambda: client.source.staleness_s is not None, "stale")
    clock.advance(2.5)
    found = api.get_client().get_string_details(flag_key="theme", default_value="x")
    assert (found.value, found.reason) == ("#f60", OFReason.STALE)
    assert found.flag_metadata == {"version": 6, "staleness_s": 2.5,
                                   "evaluation_reason": "STATIC"}  # fmt: skip


def test_the_provider_before_the_first_load(open_client: Any, openfeature: None) -> None:
    client: FlagClient = open_client(f"redis://127.0.0.1:{free_port()}/0", ready=False)
    api.set_provider_and_wait(OpsmedicProvider(client, ready_timeout_s=0.0))
    found = api.get_client().get_boolean_details(flag_key="new_checkout", default_value=True)
    assert (found.value, found.reason, found.error_code) == (True, OFReason.ERROR,
                                                             OFCode.PROVIDER_NOT_READY)  # fmt: skip
