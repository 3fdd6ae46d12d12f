"""Flags changed through the API with a real Redis: the store and Redis agree after every
change, each change is an event on a timeline, bad requests get a 4xx naming the field, and
a Redis that is down gets a 503 with nothing half-written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from opsmedic.tokens import Scope

if __package__:
    from ..api_service import Api, running_api
    from ..services_redis import RedisServer
    from ..store_fixtures import overwrite_flag
else:
    from api_service import Api, running_api
    from services_redis import RedisServer
    from store_fixtures import overwrite_flag

FLAGS = {
    "new_checkout": {"description": "the one-page checkout", "default": "on",
                     "rollout": {"percentage": 30}},
    "theme": {"type": "string", "variants": {"classic": "#222", "bright": "#f60"},
              "default": "classic"},
}  # fmt: skip


def redis_docs(server: RedisServer) -> dict[str, Any]:
    """Every flag document in Redis, as redis-cli sees them."""
    lines = server.cli("HGETALL", "opsmedic:flags").splitlines()
    return {k: json.loads(v)["doc"] for k, v in zip(lines[::2], lines[1::2], strict=True)}


def _config(server: RedisServer) -> dict[str, Any]:
    return {"flags": FLAGS, "flag_store": {"redis": {"url": server.url, "check_every": "1h"}}}


async def _synced(api: Api, server: RedisServer) -> None:
    """The start's sync, done now (the watcher's first check may still be on its way)."""
    assert api.rt.flags is not None
    await api.rt.flags.check()
    assert set(redis_docs(server)) == set(FLAGS)


async def test_changes_reach_the_store_redis_and_the_timeline(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        await _synced(api, redis_server)
        async with api.client(api.tokens["operate"]) as client:
            off = await client.post("/api/v1/flags/new_checkout/enabled",
                                    json={"enabled": False, "expected_version": 1})  # fmt: skip
            assert off.status_code == 200, off.text
            assert off.json()["version"] == 2 and off.json()["flag"]["enabled"] is False
            assert off.json()["updated_by"].startswith("api test-operate")
            half = await client.post("/api/v1/flags/new_checkout/rollout",
                                     json={"percentage": 50})  # fmt: skip
            assert half.json()["flag"]["rollout"]["percentage"] == 50
            doc = {"type": "number", "variants": {"low": 1, "high": 2.5}, "default": "low"}
            made = await client.put("/api/v1/flags/limit", json=doc,
                                    params={"expected_version": 0})  # fmt: skip
            assert made.status_code == 200, made.text
            undone = await client.post("/api/v1/flags/new_checkout/undo", json={})
            assert undone.json()["flag"]["rollout"]["percentage"] == 30
            assert undone.json()["version"] == 4
        await api.rt.engine.drain()
        async with api.client(api.tokens["read"]) as client:
            listed = (await client.get("/api/v1/flags")).json()
            history = (await client.get("/api/v1/flags/new_checkout/history")).json()
            events = (await client.get("/api/v1/events",
                                       params={"source": "opsmedic", "kind": "flag"})).json()  # fmt: skip
            incidents = (await client.get("/api/v1/incidents")).json()
            flagged = next(i for i in incidents if i["title"] == "flag on new_checkout")
            detail = (await client.get(f"/api/v1/incidents/{flagged['id']}")).json()
    assert [f["key"] for f in listed["flags"]] == ["limit", "new_checkout", "theme"]
    assert listed["problems"] == []
    # Redis holds what the store holds, flag by flag.
    assert redis_docs(redis_server) == {f["key"]: f["flag"] for f in listed["flags"]}
    assert [c["version"] for c in history] == [4, 3, 2, 1]
    assert history[0]["by"] == undone.json()["updated_by"] and history[-1]["before"] is None
    assert history[2]["before"]["enabled"] is True and history[2]["after"]["enabled"] is False
    mine = sorted((e for e in events if e["resource"] == "new_checkout"),
                  key=lambda e: int(e["labels"]["version"]))  # fmt: skip
    assert [e["labels"] for e in mine] == [
        {"enabled": "false", "variant": "off", "version": str(v)} for v in (2, 3, 4)
    ]
    assert mine[0]["status"] == "firing" and mine[0]["payload"]["by"].startswith("api ")
    assert mine[0]["payload"]["before"]["enabled"] is True
    # Switching the flag off opened an incident whose timeline shows the change.
    assert flagged["status"] == "open" and flagged["severity"] == "warning"
    assert [e["ref"] for e in detail["timeline"]][:1] == [mine[0]["id"]]


async def test_scopes_an_ingest_token_cannot_read_or_change_flags(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        await _synced(api, redis_server)
        ingest, read = api.tokens["ingest"], api.tokens["read"]
        async with api.client(ingest) as client:
            assert (await client.get("/api/v1/flags")).status_code == 403
            for path, body in [("/enabled", {"enabled": False}), ("/rollout", {"percentage": 0}),
                               ("/undo", {})]:  # fmt: skip
                reply = await client.post(f"/api/v1/flags/new_checkout{path}", json=body)
                assert reply.status_code == 403, path
            put = await client.put("/api/v1/flags/new_checkout", json={"default": "off"})
            assert put.status_code == 403
        async with api.client(read) as client:
            refused = await client.post("/api/v1/flags/new_checkout/enabled",
                                        json={"enabled": False})  # fmt: skip
            assert refused.status_code == 403
        async with api.client() as client:
            assert (await client.get("/api/v1/flags")).status_code == 401
        async with api.client(api.token(Scope.READ, Scope.INGEST)) as client:
            assert (await client.get("/api/v1/flags/new_checkout")).status_code == 200
        assert (await api.rt.flags.get("new_checkout")).version == 1  # type: ignore[union-attr]
    assert redis_docs(redis_server)["new_checkout"]["enabled"] is True


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("post", "/api/v1/flags/new_chekout/enabled", {"enabled": False}, 404,
         "did you mean new_checkout"),
        ("get", "/api/v1/flags/nope/history", None, 404, "no flag 'nope'"),
        ("post", "/api/v1/flags/new_checkout/rollout", {"percentage": 101}, 422, "percentage"),
        ("post", "/api/v1/flags/new_checkout/rollout", {"percentage": -1}, 422, "percentage"),
        ("post", "/api/v1/flags/new_checkout/rollout", {"percentage": "50"}, 422, "percentage"),
        ("post", "/api/v1/flags/new_checkout/enabled", {"enabled": "no"}, 422, "enabled"),
        ("post", "/api/v1/flags/new_checkout/enabled", {"enabled": 0}, 422, "enabled"),
        ("post", "/api/v1/flags/new_checkout/enabled", {"enabled": True, "expected_version": 7},
         409, "expected version 7, but it is at version 1"),
        ("post", "/api/v1/flags/new_checkout/enabled", {"enabled": True, "enable": 1}, 422,
         "enable"),
        ("post", "/api/v1/flags/new_checkout/undo", {}, 409, "created it"),
        ("post", "/api/v1/flags/bad key/enabled", {"enabled": False}, 422, "key"),
        ("post", "/api/v1/flags/theme/rollout", {"percentage": 10}, 422,
         "rollout.variant: name the variant"),
        ("put", "/api/v1/flags/new_checkout", {"default": "maybe"}, 422,
         "body.default: 'maybe' is not a variant"),
        ("put", "/api/v1/flags/new_checkout", {"type": "string", "variants": {"a": 1},
                                               "default": "a"}, 422, "body.variants.a"),
        ("put", "/api/v1/flags/new_checkout", {"rollout": {"percentage": 300}}, 422,
         "body.rollout.percentage"),
        ("put", "/api/v1/flags/new_checkout", {"key": "theme"}, 422, "body.key"),
        ("put", "/api/v1/flags/new_checkout", [1, 2], 422, "body"),
        ("put", "/api/v1/flags/new_checkout", {"defualt": "on"}, 422, "defualt"),
        # No coercion: "no" is not false, "50" not 50, true not 1 %.
        ("put", "/api/v1/flags/new_checkout", {"default": "off", "enabled": "no",
                                               "rollout": {"percentage": "50"}}, 422,
         "body.enabled: Input should be a valid boolean; body.rollout.percentage: Input should "
         "be a valid integer"),
        ("put", "/api/v1/flags/new_checkout", {"rollout": {"percentage": True}}, 422,
         "body.rollout.percentage: Input should be a valid integer"),
        ("put", "/api/v1/flags/stream", {}, 422, "'stream' is reserved"),
        ("put", "/api/v1/flags/new_checkout", {"rules": [{"serve": "off", "when": [
            {"attribute": "a", "op": "regex", "value": "(?:(?:a{100}){100}){100}"}]}]}, 422,
         "body.rules.0.when.0.value: a regex of at most 10000 characters multiplied out"),
        ("post", "/api/v1/flags/theme/rollout", {"percentage": 10, "variant": "nope"}, 422,
         "rollout.variant: 'nope' is not a variant"),
        # No body at all is an undo of whatever version there is.
        ("post", "/api/v1/flags/new_checkout/undo", None, 409, "created it"),
    ],
)  # fmt: skip
async def test_bad_requests_get_a_4xx_naming_it_and_write_nothing(
    tmp_path: Path, redis_server: RedisServer, method: str, path: str, body: Any,
    status: int, says: str,
) -> None:  # fmt: skip
    async with running_api(tmp_path, **_config(redis_server)) as api:
        await _synced(api, redis_server)
        before = redis_docs(redis_server)
        async with api.client(api.token(Scope.READ, Scope.OPERATE)) as client:
            kwargs = {} if body is None else {"json": body}
            reply = await client.request(method.upper(), path, **kwargs)
        assert reply.status_code == status, reply.text
        assert says in reply.json()["detail"], reply.text
        versions = [r.version for r in await api.rt.flags.list()]  # type: ignore[union-attr]
    assert versions == [1, 1]
    assert redis_docs(redis_server) == before


async def test_a_rollout_names_its_variant_and_an_undo_needs_no_body(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        await _synced(api, redis_server)
        async with api.client(api.tokens["operate"]) as client:
            rolled = await client.post("/api/v1/flags/theme/rollout",
                                       json={"percentage": 10, "variant": "bright"})  # fmt: skip
            assert rolled.status_code == 200, rolled.text
            assert rolled.json()["flag"]["rollout"]["variant"] == "bright"
            undone = await client.post("/api/v1/flags/theme/undo")
            assert undone.status_code == 200, undone.text
            assert (undone.json()["version"], undone.json()["flag"].get("rollout")) == (3, None)
    assert redis_docs(redis_server)["theme"].get("rollout") is None


async def test_redis_down_is_a_503_naming_it_and_nothing_is_half_written(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        await _synced(api, redis_server)
        redis_server.stop()
        async with api.client(api.tokens["operate"]) as client:
            reply = await client.post("/api/v1/flags/new_checkout/enabled",
                                      json={"enabled": False})  # fmt: skip
            put = await client.put("/api/v1/flags/fresh", json={"default": "off"})
        assert reply.status_code == 503, reply.text
        assert redis_server.url in reply.json()["detail"]
        assert "nothing was changed" in reply.json()["detail"]
        assert put.status_code == 503
        flags = api.rt.flags
        assert flags is not None
        record = await flags.get("new_checkout")
        assert (record.version, record.flag.enabled) == (1, True)
        assert len(await flags.history("new_checkout")) == 1
        assert [r.flag.key for r in await flags.list()] == ["new_checkout", "theme"]
        async with api.client() as client:
            ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready"
        assert ready["flag_store"]["status"] == "unreachable"
        async with api.client(api.tokens["read"]) as client:
            metrics = (await client.get("/metrics")).text
        assert "opsmedic_flag_store_up 0.0" in metrics
        redis_server.start()
        await flags.check()
        async with api.client() as client:
            assert (await client.get("/readyz")).json()["flag_store"] == {"status": "ok"}
        async with api.client(api.tokens["read"]) as client:
            assert "opsmedic_flag_store_up 1.0" in (await client.get("/metrics")).text
        async with api.client(api.tokens["operate"]) as client:
            again = await client.post("/api/v1/flags/new_checkout/enabled",
                                      json={"enabled": False})  # fmt: skip
        assert again.status_code == 200
    assert redis_docs(redis_server)["new_checkout"]["enabled"] is False


async def test_a_redis_that_lost_its_data_gets_the_stores_flags_back(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        flags = api.rt.flags
        assert flags is not None
        # The start pushes the seeded flags (the watcher's first check): readers never see an
        # empty Redis while the store has flags.
        for _ in range(200):
            if set(redis_docs(redis_server)) == set(FLAGS):
                break
            await asyncio.sleep(0.05)
        assert set(redis_docs(redis_server)) == set(FLAGS)
        epoch = redis_server.cli("GET", "opsmedic:flags:epoch")
        redis_server.cli("FLUSHALL")
        redis_server.cli("HSET", "opsmedic:flags", "theme", "not json")
        await flags.check()
        assert redis_docs(redis_server) == {
            r.flag.key: r.flag.model_dump(mode="json") for r in await flags.list()
        }
        assert redis_server.cli("GET", "opsmedic:flags:epoch") not in ("", epoch)
        assert await flags.sync() == 0  # in agreement: nothing to put


async def test_a_hand_edited_flag_fails_alone_and_a_put_repairs_it(
    tmp_path: Path, redis_server: RedisServer, store_url: str
) -> None:
    async with running_api(tmp_path, store=store_url, **_config(redis_server)) as api:
        await _synced(api, redis_server)
        served = redis_docs(redis_server)["theme"]
        overwrite_flag(store_url, "theme", '{"key": "theme", "rollout": 7}')
        problem = "rollout: Input should be a valid dictionary or instance of Rollout"
        assert api.rt.flags is not None
        assert await api.rt.flags.sync() == 0  # the valid ones are in agreement; it is skipped
        assert redis_docs(redis_server)["theme"] == served
        async with api.client(api.token(Scope.READ, Scope.OPERATE)) as client:
            listed = await client.get("/api/v1/flags")
            shown = await client.get("/api/v1/flags/theme")
            switched = await client.post("/api/v1/flags/theme/enabled", json={"enabled": False})
            doc = {"type": "string", "variants": {"dark": "#000"}, "default": "dark"}
            repaired = await client.put("/api/v1/flags/theme", json=doc,
                                        params={"expected_version": 1})  # fmt: skip
            history = (await client.get("/api/v1/flags/theme/history")).json()
            after = (await client.get("/api/v1/flags")).json()
    assert listed.status_code == 200, listed.text
    assert [f["key"] for f in listed.json()["flags"]] == ["new_checkout"]
    [bad] = listed.json()["problems"]
    assert (bad["key"], bad["version"], bad["problem"]) == ("theme", 1, problem)
    assert bad["doc"] == {"key": "theme", "rollout": 7}
    for reply in (shown, switched):
        assert reply.status_code == 409, reply.text
        assert (f"flag 'theme' (version 1) in the store is not a valid flag: {problem}; write a "
                "valid one over it") in reply.json()["detail"]  # fmt: skip
    assert repaired.status_code == 200, repaired.text
    assert (repaired.json()["version"], after["problems"]) == (2, [])
    assert (history[0]["before"], history[0]["before_problem"]) == (None, problem)
    assert redis_docs(redis_server)["theme"] == repaired.json()["flag"]
