"""Deployments in the store, on SQLite and PostgreSQL: one active per service and env, changes
only from the state the writer saw, the last known good."""

from __future__ import annotations

import pytest

from opsmedic.errors import ReleaseRefused
from opsmedic.model import Deployment, DeploymentState
from opsmedic.store import Store
from store_fixtures import at_once

STARTED, VERIFYING = DeploymentState.STARTED, DeploymentState.VERIFYING


def _deployment(
    version: str, at: float, owner: str = "host:1", env: str = "production"
) -> Deployment:
    return Deployment("shop", env, version, owner=owner, created_at=at, updated_at=at,
                      checks={"note": "ü\u2028"})  # fmt: skip


def _promote(store: Store, deployment: Deployment, at: float) -> None:
    deployment.state, deployment.last_known_good, deployment.finished_at = (
        DeploymentState.PROMOTED,
        True,
        at,
    )
    assert store.update_deployment(deployment, [STARTED, VERIFYING])


def test_a_second_active_deployment_is_refused_and_another_env_is_not(store: Store) -> None:
    first = _deployment("v1", 1.0)
    store.start_deployment(first)
    with pytest.raises(
        ReleaseRefused, match=f"a deployment is running \\(v1, {first.id}, by host:1"
    ):
        store.start_deployment(_deployment("v2", 2.0, owner="host:2"))
    store.start_deployment(_deployment("v2", 2.0, env="staging"))
    _promote(store, first, 3.0)
    store.start_deployment(_deployment("v2", 4.0))
    assert [d.version for d in store.list_deployments("shop", "production")] == ["v2", "v1"]
    assert store.get_deployment(first.id).checks == {"note": "ü\u2028"}


def test_concurrent_starts_let_exactly_one_through(store: Store) -> None:
    outcomes: list[str] = []

    def start(i: int) -> None:
        try:
            store.start_deployment(_deployment(f"v{i}", float(i), owner=f"host:{i}"))
            outcomes.append("started")
        except ReleaseRefused:
            outcomes.append("refused")

    at_once(start, 8)
    assert sorted(outcomes) == ["refused"] * 7 + ["started"]


def test_changes_need_the_state_and_owner_the_writer_saw(store: Store) -> None:
    mine = _deployment("v1", 1.0)
    store.start_deployment(mine)
    stale = _deployment("v1", 1.0, owner="host:9")
    stale.id = mine.id
    stale.state = VERIFYING
    assert not store.update_deployment(stale, [STARTED])  # not the owner
    assert store.take_over_deployment(mine.id, "host:1", "host:9", 5.0)
    assert not store.deployment_heartbeat(mine.id, "host:1", 6.0)  # lost it
    assert store.deployment_heartbeat(mine.id, "host:9", 6.0)
    assert store.update_deployment(stale, [STARTED])
    assert not store.update_deployment(stale, [STARTED])  # verifying now


def test_last_known_good_is_the_newest_promoted_other_version(store: Store) -> None:
    assert store.last_known_good("shop", "production") is None
    for i, version in enumerate(("v1", "v2", "v3"), start=1):
        found = _deployment(version, float(i))
        store.start_deployment(found)
        if version != "v3":
            _promote(store, found, float(i))
    assert store.last_known_good("shop", "production").version == "v2"  # type: ignore[union-attr]
    assert store.last_known_good("shop", "production", excluding="v2").version == "v1"  # type: ignore[union-attr]
    assert store.last_known_good("shop", "production", version="v3") is None
    assert store.last_known_good("shop", "staging") is None
