"""The `set_flag` action in a running opsmedic: a rule pulls a kill switch when an alert fires
and puts it back when it resolves, recorded as the rule with its run; dry-run changes nothing;
a templated key can only ever be a valid key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

if __package__:
    from ..api_service import Api, running_api
    from ..services_redis import RedisServer
else:
    from api_service import Api, running_api
    from services_redis import RedisServer

FLAGS = {
    "new_checkout": {"default": "on"},
    "theme": {"type": "string", "variants": {"classic": "#222", "bright": "#f60"},
              "default": "classic"},
}  # fmt: skip
ALERT = {"source": "probe", "kind": "checkout_errors", "resource": "checkout"}
RULES: list[dict[str, Any]] = [
    {"name": "kill-checkout", "when": {"source": "probe", "status": "firing"},
     "do": [{"set_flag": {"flag": "new_checkout", "enabled": False}}]},
    {"name": "restore-checkout", "when": {"source": "probe", "status": "resolved"},
     "do": [{"set_flag": {"flag": "new_checkout", "enabled": True}}]},
    {"name": "by-label", "when": {"source": "feature"},
     "do": [{"set_flag": {"flag": "{{ event.labels.feature }}", "enabled": False}}]},
    {"name": "leashed", "when": {"source": "leash"}, "dry_run": True,
     "do": [{"set_flag": {"flag": "theme", "variant": "bright"}}]},
    {"name": "half", "when": {"source": "half"},
     "do": [{"set_flag": {"flag": "new_checkout", "rollout": 50}}]},
]  # fmt: skip


async def _send(api: Api, *events: dict[str, Any]) -> list[str]:
    """Ingest `events`, wait until their runs finished; the ids of the runs."""
    async with api.client(api.tokens["ingest"]) as client:
        reply = await client.post("/api/v1/events", json=list(events))
    assert reply.status_code == 202, reply.text
    await api.rt.engine.drain()
    return [r for e in reply.json()["events"] for r in e["run_ids"]]


async def test_a_rule_pulls_the_kill_switch_and_the_resolution_puts_it_back(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis = {"redis": {"url": redis_server.url, "check_every": "1h"}}
    async with running_api(tmp_path, RULES, flags=FLAGS, flag_store=redis) as api:
        flags = api.rt.flags
        assert flags is not None
        [killed] = await _send(api, {**ALERT, "status": "firing"})
        record = await flags.get("new_checkout")
        assert record.flag.enabled is False
        assert '"enabled":false' in redis_server.cli("HGET", "opsmedic:flags", "new_checkout")
        [again] = await _send(api, {**ALERT, "status": "firing", "value": 2})
        assert (await flags.get("new_checkout")).version == record.version  # already off
        [restored] = await _send(api, {**ALERT, "status": "resolved"})
        assert (await flags.get("new_checkout")).flag.enabled is True
        history = await flags.history("new_checkout")
        run = api.store.get_run(killed)
        again_run = api.store.get_run(again)
    assert [(str(c.by), c.by.run_id, c.after.enabled) for c in history[:2]] == [
        ("rule restore-checkout", restored, True), ("rule kill-checkout", killed, False),
    ]  # fmt: skip
    assert str(run.state) == "succeeded"
    assert run.steps[0].details["flag"] == "new_checkout"
    assert "already so" in again_run.steps[0].message


async def test_dry_run_and_a_rollout(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES, flags=FLAGS) as api:
        flags = api.rt.flags
        assert flags is not None
        [leashed] = await _send(api, {"source": "leash"})
        assert (await flags.get("theme")).version == 1
        assert str(api.store.get_run(leashed).steps[0].state) == "skipped"
        await _send(api, {"source": "half"})
        rollout = (await flags.get("new_checkout")).flag.rollout
        assert rollout is not None and rollout.percentage == 50


async def test_a_templated_key_cannot_be_turned_into_another_flag_or_text(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path, RULES, flags=FLAGS) as api:
        flags = api.rt.flags
        assert flags is not None
        bad = ["new_checkout theme", "new_checkout\ntheme", "theme,new_checkout", "../theme",
               "", "x" * 101, "{{ 7 * 7 }}"]  # fmt: skip
        runs = await _send(api, *({"source": "feature", "labels": {"feature": f}} for f in bad))
        for ref in runs:
            found = api.store.get_run(ref)
            assert str(found.state) == "failed"
            message = found.steps[0].message
            # `field: message` as the rules' loader says it, not pydantic's dump and link.
            assert message.startswith("bad parameters: flag: String should "), message
            assert "pydantic.dev" not in message and "input_value" not in message, message
        assert [r.version for r in await flags.list()] == [1, 1]
        [unknown] = await _send(api, {"source": "feature", "labels": {"feature": "new_chekout"}})
        assert "did you mean new_checkout" in api.store.get_run(unknown).steps[0].message
        [good] = await _send(api, {"source": "feature", "labels": {"feature": "theme"}})
        assert str(api.store.get_run(good).state) == "succeeded"
        assert (await flags.get("theme")).flag.enabled is False
