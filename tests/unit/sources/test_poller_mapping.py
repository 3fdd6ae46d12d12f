"""Poller items into Events: path lookup, the field map, status_map, and bad items named."""

from __future__ import annotations

from typing import Any

import pytest

from opsmedic.config.poller import PollerConfig, parse_path
from opsmedic.model import Status, fingerprint_of
from opsmedic.sources.poller import ItemError, ItemMapper, lookup

NOW = 1_800_000_000.0

ITEM: dict[str, Any] = {
    "id": 4711,
    "name": "LinkDown",
    "level": "critical",
    "state": "open",
    "updated_at": "2026-12-02T10:00:00Z",
    "target": {"service": "uplink", "host": "sw-1", "ports": [{"n": 1}, {"n": 2}]},
    "owner": {"team": "neteng", "oncall": None},
    "load": 97.5,
}


def mapper(mapping: dict[str, str], **extra: Any) -> ItemMapper:
    return ItemMapper(
        PollerConfig.model_validate({"name": "nms", "url": "http://h/f", "map": mapping, **extra})
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "LinkDown"),
        ("target.host", "sw-1"),
        ("target.ports[1].n", 2),
        ("owner.oncall", None),
        ("", ITEM),
    ],
)
def test_lookup_follows_keys_and_indexes(path: str, value: Any) -> None:
    assert lookup(ITEM, parse_path(path)) == value


@pytest.mark.parametrize(
    ("data", "path", "error", "message"),
    [
        (ITEM, "target.rack", KeyError, "target.rack is missing"),
        (ITEM, "target.ports[5].n", KeyError, r"target.ports\[5\] is missing \(list of 2\)"),
        (ITEM, "name.first", TypeError, "name is text, not an object"),
        (ITEM, "target[0]", TypeError, "target is an object, not a list"),
        (ITEM, "load.x", TypeError, "load is a number, not an object"),
        ([1, 2], "a", TypeError, "the item is a list, not an object"),
        ({"a": None}, "a.b", TypeError, "a is null, not an object"),
    ],
)
def test_lookup_says_what_is_missing(
    data: Any, path: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        lookup(data, parse_path(path))


def test_an_item_becomes_an_event() -> None:
    m = mapper(
        {"kind": "name", "resource": "target.service", "host": "target.host", "severity": "level",
         "status": "state", "fingerprint": "id", "time": "updated_at", "value": "load",
         "labels.team": "owner.team", "labels.port": "target.ports[0].n"},
        status_map={"open": "firing", "closed": "resolved"},
    )  # fmt: skip
    event = m.event(ITEM, NOW)
    assert event.source == "nms"
    assert (event.kind, event.resource, event.host) == ("LinkDown", "uplink", "sw-1")
    assert event.severity == "critical"
    assert event.status is Status.FIRING
    assert event.fingerprint == "4711"  # a JSON number where text belongs becomes its text
    assert event.time == 1_796_205_600.0  # 2026-12-02T10:00:00Z
    assert event.value == 97.5
    assert event.labels == {"team": "neteng", "port": "1"}
    assert event.payload == ITEM  # the raw item, whole


def test_defaults_when_fields_are_not_mapped() -> None:
    event = mapper({"kind": "name"}, source="legacy").event(ITEM, NOW)
    assert event.source == "legacy"
    assert event.time == NOW  # the clock's, not the wall's
    assert event.status is Status.FIRING
    assert event.severity == "info"
    assert event.fingerprint == fingerprint_of("legacy", "LinkDown", "", "", {})


def test_a_null_value_leaves_the_field_at_its_default() -> None:
    event = mapper({"kind": "name", "labels.oncall": "owner.oncall"}).event(ITEM, NOW)
    assert event.labels == {}


def test_status_map_translates_the_feed_vocabulary() -> None:
    m = mapper(
        {"status": "state"}, status_map={"open": "firing", "closed": "resolved", "1": "resolved"}
    )
    assert m.event({**ITEM, "state": "closed"}, NOW).status is Status.RESOLVED
    assert m.event({**ITEM, "state": 1}, NOW).status is Status.RESOLVED


def test_status_without_a_map_must_already_be_firing_or_resolved() -> None:
    m = mapper({"status": "state"})
    assert m.event({"state": "resolved"}, NOW).status is Status.RESOLVED
    with pytest.raises(ItemError, match=r"^state: Input should be 'firing' or 'resolved'") as info:
        m.event(ITEM, NOW)
    assert info.value.path == "state"


def test_a_non_object_item_goes_into_the_payload_under_item() -> None:
    event = mapper({"kind": "[0]"}).event(["disk", "full"], NOW)
    assert event.kind == "disk"
    assert event.payload == {"item": ["disk", "full"]}


@pytest.mark.parametrize(
    ("mapping", "item", "path", "reason"),
    [
        ({"kind": "target.rack"}, ITEM, "target.rack", "target.rack is missing"),
        ({"kind": "target"}, ITEM, "target", "expected text or a number, got an object"),
        ({"labels.ports": "target.ports"}, ITEM, "target.ports", "expected text or a number, got a list"),
        ({"status": "state"}, {"state": "flapping"}, "state", "status 'flapping' is not in status_map (closed, open)"),
        ({"time": "updated_at"}, {"updated_at": "yesterday"}, "updated_at", "not a time: 'yesterday'"),
        ({"value": "target"}, ITEM, "target", "Input should be a valid number"),
        ({"severity": "level"}, {"level": "x" * 51}, "level", "at most 50 characters"),
        ({"kind": "name"}, "just text", "name", "the item is text, not an object"),
    ],
)  # fmt: skip
def test_an_unmappable_item_names_its_path(
    mapping: dict[str, str], item: Any, path: str, reason: str
) -> None:
    status_map = {"open": "firing", "closed": "resolved"} if "status" in mapping else {}
    with pytest.raises(ItemError) as info:
        mapper(mapping, status_map=status_map).event(item, NOW)
    assert info.value.path == path
    assert reason in info.value.reason
