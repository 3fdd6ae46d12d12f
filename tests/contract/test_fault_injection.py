"""Fault injection: every webhook mapper and every action meets hostile values and either
handles them safely or fails alone with a clear error (like apprise's harness for its plugins).

An `ingest` token holder controls every string of an event, so these are the values an
adversary sends: shell syntax, paths that climb, NUL, newlines, huge and deeply nested
values, text that is not valid UTF-8 (a lone surrogate is what invalid bytes become once
decoded with `surrogateescape`). A new mapper or action is covered by adding one line here.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from opsmedic.actions.cleanup_settings import CleanupConfig
from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.loop import Engine
from opsmedic.errors import WebhookError
from opsmedic.model import Event, RunState
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.sources.webhooks import BUILTIN_WEBHOOKS
from opsmedic.store import Store
from opsmedic.views import EventView, RunView

if __package__:
    from ..http_receiver import Receiver, receiving
    from ..injections import INJECTIONS
    from ..unit.sources import webhook_payloads as samples
else:  # pragma: no cover - tests/ on sys.path
    from http_receiver import Receiver, receiving  # type: ignore[no-redef]
    from injections import INJECTIONS  # type: ignore[no-redef]
    from unit.sources import webhook_payloads as samples  # type: ignore[no-redef]


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


CLIMBING = ["..", "../victim", "../../victim", "a/../../victim", "/victim", "//", ".", "a//b"]
STRANGE = ["\x00", "a\x00b", "\n", "line\r\nX-Evil: 1", "\ud800", "\udcff\udcfe", "x" * 100_000]
# Values that replace a whole JSON leaf: other types, huge and deep containers.
SHAPES: list[Any] = [None, 0, -1, 1e308, True, [], {}, _deep(300), list(range(10_000))]
SHAPES.append({f"k{i}": i for i in range(10_000)})


def hostile_strings(marker: Path) -> list[str]:
    return [v.format(marker=marker) for v in INJECTIONS] + CLIMBING + STRANGE


# ---- webhook mappers -------------------------------------------------------------------

WEBHOOKS = {spec.name: spec for spec in BUILTIN_WEBHOOKS}
SAMPLES: dict[str, Any] = {
    "alertmanager": samples.load(samples.ALERTMANAGER),
    "grafana": samples.load(samples.GRAFANA),
    "datadog": samples.load(samples.DATADOG),
    "opsgenie": samples.load(samples.OPSGENIE),
    "pagerduty": samples.load(samples.PAGERDUTY_V3_FULL),
    "dynatrace": samples.render_dynatrace(samples.DYNATRACE_TEMPLATE),
}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path


def _replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return body


def test_every_mapper_has_a_sample() -> None:
    assert set(SAMPLES) == set(WEBHOOKS)


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_a_mapper_maps_or_names_the_place_for_any_hostile_leaf(source: str, tmp_path: Path) -> None:
    """Each leaf of a real body replaced by each hostile value: Events, or a WebhookError."""
    body = SAMPLES[source]
    assert WEBHOOKS[source].parse(body), "the sample itself must map"
    values = [*hostile_strings(tmp_path / "marker"), *SHAPES]
    tried = 0
    for path in _leaves(body):
        for value in values:
            tried += 1
            try:
                events: list[Any] = WEBHOOKS[source].parse(_replaced(body, path, value))
            except WebhookError as exc:
                events = [str(exc)]  # a WebhookError names the place: never empty
            assert all(isinstance(e, Event) or e.strip() for e in events), (source, path)
    assert tried > 100
    assert not (tmp_path / "marker").exists()


# ---- actions, through the engine --------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[str]:
    with receiving() as url:
        yield url


def _rules(sandbox: Path, url: str) -> str:
    """One rule per action (kind = the action's name), each templating the hostile label."""
    v = "{{ event.labels.v }}"
    steps = {
        "noop": {"message": v},
        "run_command": {"argv": ["printf", "%s", v]},
        "run_command_shell": {"shell": "printf %s {{ event.labels.v | shquote }}"},
        "http_request": {
            "method": "POST",
            "url": url + "/hook/{{ event.labels.v | urlencode }}",
            "headers": {"X-Alert": v},
            "json": {"v": v},
        },
        "notify": {"urls": [url.replace("http://", "json://") + "/notify"], "title": v, "body": v},
        "annotate": {"url": url + "/note", "note": "saw " + v},
        "archive_logs": {
            "dir": f"{sandbox}/logs/{v}",
            "include": ["*.log.*"],
            "min_age": "0s",
            "format": "zip",  # the format that cannot hold every file name
            "to": f"{sandbox}/archive/{v}",
        },
        "kill_process": {"pid": v, "start_time": v},
        # Everything not protected in its directory: an escape would delete the victim's logs.
        "cleanup": {
            "dir": f"{sandbox}/tmp/{v}",
            "include": ["*"],
            "min_age": "0s",
            "enforce": True,
        },
        "dns_failover": {
            "direction": "failover",
            "resolv_conf": {
                "path": f"{sandbox}/resolv/{v}",
                "primary": "127.0.0.1",
                "secondary": "127.0.0.2",
            },
        },
        "recheck": {"probe": v},
        "loghunt": {"files": [f"{sandbox}/hunt/{v}/*.log"], "context": 1},
    }
    rules = []
    for kind, params in steps.items():
        action = kind.removesuffix("_shell")
        rules.append({"name": kind, "when": {"kind": kind}, "do": [{action: params}]})
    return json.dumps(rules)  # JSON is YAML


@pytest.fixture
async def engine(tmp_path: Path, receiver: str, store: Store) -> AsyncIterator[Engine]:
    sandbox = tmp_path / "sandbox"
    for d in ("logs/app", "archive/app", "resolv"):
        (sandbox / d).mkdir(parents=True)
    (sandbox / "resolv" / "app").write_text("nameserver 127.0.0.1\nnameserver 127.0.0.2\n")
    (sandbox / "hunt" / "app").mkdir(parents=True)
    (sandbox / "hunt" / "app" / "x.log").write_text("ERROR one\nok\nERROR one\n")
    _odd_logs(sandbox / "logs" / "app")
    _throwaway(sandbox / "tmp" / "app")
    (tmp_path / "rules.yaml").write_text(_rules(sandbox, receiver))
    registry = build_registry(load_entry_points=False)
    config = Config()
    config.actions.timeout = 10.0
    config.actions.retry.backoff = 0.001
    config.actions.retry.max_backoff = 0.002
    config.state_dir = tmp_path / "state"
    cleanup = CleanupConfig(roots=[str(sandbox / "tmp")])
    engine = Engine(settings={"cleanup": cleanup}, probe_once=None, ruleset=load_rules(tmp_path / "rules.yaml", registry), registry=registry,
                    config=config, store=store, clock=SystemClock())  # fmt: skip
    await engine.start()
    yield engine
    await engine.close()


def _odd_logs(logs: Path) -> None:
    """The canary's logs: names a hostile world writes (not UTF-8, a newline), a hard link."""
    for name in (b"plain.log.1", b"bad\xff.log.1", b"new\nline.log.1", b"linked.log.1"):
        path = os.path.join(os.fsencode(logs), name)
        with open(path, "wb") as f:
            f.write(b"old line\n" * 50)
        os.utime(path, (1, 1))
    os.link(logs / "linked.log.1", logs.parent / "linked-elsewhere")


def _throwaway(tmp: Path) -> None:
    """The cleanup canary's directory: two old throwaway files and a database it must keep."""
    tmp.mkdir(parents=True)
    for name in ("a.tmp", "core.123", "app.db"):
        (tmp / name).write_bytes(b"x" * 100)
        os.utime(tmp / name, (1, 1))


def _victim(tmp_path: Path) -> dict[str, bytes]:
    """Logs an escaped path would reach: beside the sandbox, old enough to archive."""
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    for name in ("a.log.1", "b.log.2"):
        (victim / name).write_bytes(b"keep me\n" * 100)
        os.utime(victim / name, (1, 1))
    return _files(victim)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


async def test_every_action_handles_hostile_event_values_or_fails_alone(
    engine: Engine, tmp_path: Path
) -> None:
    """Every hostile value in one batch with a benign canary per action: every event is
    committed, every run ends in a final state with a message, no injected command runs, no
    file outside the rule's directories is touched, and the canaries still do their work."""
    victim = _victim(tmp_path)
    marker = tmp_path / "marker"
    kinds = [rule["name"] for rule in json.loads((tmp_path / "rules.yaml").read_text())]
    events = [
        Event(source="fuzz", kind=kind, resource=f"r{i}", labels={"v": value})
        for kind in kinds
        for i, value in enumerate(hostile_strings(marker))
    ]
    canaries = [
        Event(source="fuzz", kind=kind, resource="canary", labels={"v": "app"}) for kind in kinds
    ]
    accepted = await engine.submit(events + canaries)
    await engine.drain()

    assert len(accepted) == len(events) + len(canaries)
    store = engine.store
    for item in accepted:
        for run_id in item.run_ids:
            run = store.get_run(run_id)
            assert run.state in {RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED}, run
            if run.state is RunState.FAILED:
                assert run.message, run
    assert not marker.exists(), "an event value ran as a command"
    assert _files(tmp_path / "victim") == victim
    assert _dirs(tmp_path) == [
        "sandbox", "state", "victim",
    ]  # fmt: skip
    # Every event and run reads back as strict JSON, as the API and `runs --json` serve it: text from
    # the world (file names, output) never makes a run unreadable.
    for item in accepted:
        orjson.dumps(EventView.of(store.get_event(item.event_id)).model_dump())
        for run_id in item.run_ids:
            orjson.dumps(RunView.of(store.get_run(run_id)).model_dump())
    canary_states = {
        store.get_run(item.run_ids[0]).rule: store.get_run(item.run_ids[0]).state
        for item in accepted[len(events) :]
    }
    for rule in ("noop", "run_command", "run_command_shell", "http_request", "notify",
                 "annotate", "archive_logs", "dns_failover", "loghunt", "cleanup"):  # fmt: skip
        assert canary_states[rule] is RunState.SUCCEEDED, rule
    logs = tmp_path / "sandbox" / "logs" / "app"
    # Archived and deleted: the plain names; kept, each with its reason: the zip-unsafe name
    # and the hard-linked file (its other name keeps the data).
    assert sorted(os.listdir(os.fsencode(logs))) == [b"bad\xff.log.1", b"linked.log.1"]
    assert os.listdir(tmp_path / "sandbox" / "tmp" / "app") == ["app.db"]
    assert not any("x-evil" in {k.lower() for k in h} for _, h, _ in Receiver.seen)
