"""A canary's progress reaches the store with each heartbeat, so the dashboard's Now page (a
reader of the store, maybe in another process) shows its weights while it runs."""

from __future__ import annotations

from typing import Any, cast

from opsmedic.clock import ManualClock
from opsmedic.model import Deployment
from opsmedic.releases.controller import ReleaseController
from opsmedic.store import Store

if __package__:
    from ...store_fixtures import store, store_url
else:
    from store_fixtures import store, store_url

__all__ = ["store", "store_url"]


async def test_each_beat_writes_the_progress_of_the_analysis(store: Store) -> None:
    unused = cast(Any, None)  # what a beat never touches: services, steps, announcements
    controller = ReleaseController({}, unused, store, unused, unused, unused, ManualClock(),
                                   unused, owner="host:1")  # fmt: skip
    deployment = Deployment("shop", "production", "v2", strategy="canary", owner="host:1")
    store.start_deployment(deployment)
    beat = controller._beat(deployment, "canary")
    step = {"canary_percent": 25, "weights": {"stable:80": 75, "new:80": 25}}
    assert await beat({"steps": [step]})
    assert store.get_deployment(deployment.id).checks == {"canary": {"steps": [step]}}
