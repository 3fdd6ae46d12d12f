"""The nginx router and the access-log measurements against a real nginx (tests/services_nginx.py)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import httpx
import psutil
import pytest

from opsmedic.releases.access_log import Traffic
from opsmedic.releases.nginx import NginxRouter, UpstreamFile
from opsmedic.releases.router import ConfigRejected, ReadBackError, ReloadFailed, RouterError

if __package__:
    from ..services_nginx import STICKY_HEADER, UPSTREAM, CanaryRig
else:
    from services_nginx import STICKY_HEADER, UPSTREAM, CanaryRig


async def answers(rig: CanaryRig, path: str, count: int, **headers: str) -> list[str]:
    """The bodies (backend names) of `count` sequential GETs, each checked to be a 200."""
    bodies = []
    async with httpx.AsyncClient(base_url=rig.url, timeout=30) as client:
        for _ in range(count):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            bodies.append(response.text)
    return bodies


def workers(rig: CanaryRig) -> set[int]:
    master = psutil.Process(int(rig.settings.pid_file.read_text()))
    return {child.pid for child in master.children()}


async def test_weights_are_applied_and_read_back(canary_rig: CanaryRig) -> None:
    rig = canary_rig
    stable, canary = rig.stable.address, rig.canary.address
    assert await rig.router.weights(UPSTREAM) == {stable: 1, canary: 0}
    assert set(await answers(rig, "/", 6)) == {"stable"}
    await rig.router.set_weights(UPSTREAM, {stable: 2, canary: 1})
    assert await rig.router.weights(UPSTREAM) == {stable: 2, canary: 1}
    assert Counter(await answers(rig, "/", 6)) == {"stable": 4, "canary": 2}
    await rig.router.set_weights(UPSTREAM, {stable: 0, canary: 5})  # promoted: stable left out
    assert await rig.router.weights(UPSTREAM) == {stable: 0, canary: 5}
    assert f"server {stable} down;" in rig.upstream_file.read_text()
    assert set(await answers(rig, "/", 6)) == {"canary"}


async def test_a_two_to_one_split_shows_in_the_access_log(canary_rig: CanaryRig) -> None:
    rig = canary_rig
    await rig.router.set_weights(UPSTREAM, {rig.stable.address: 2, rig.canary.address: 1})
    traffic = Traffic(rig.access_log)
    await answers(rig, "/", 300)
    assert traffic.poll() == 300
    stats = traffic.window()
    assert set(stats) == {rig.stable.address, rig.canary.address}
    share = stats[rig.canary.address].requests / 300
    assert abs(share - 1 / 3) < 0.05, share
    assert stats[rig.stable.address].errors == stats[rig.canary.address].errors == 0
    assert len(stats[rig.canary.address].latencies) == stats[rig.canary.address].requests
    assert traffic.malformed == 0


async def test_nginx_refusing_the_file_keeps_the_old_config_live(canary_rig: CanaryRig) -> None:
    rig = canary_rig
    await rig.router.set_weights(UPSTREAM, {rig.stable.address: 1, rig.canary.address: 1})
    before_text, before_workers = rig.upstream_file.read_text(), workers(rig)
    # A name that does not resolve passes opsmedic's checks, and nginx -t refuses it.
    with pytest.raises(ConfigRejected, match=r"host not found.*nosuch\.invalid"):
        await rig.router.set_weights(UPSTREAM, {"nosuch.invalid:8080": 1, rig.stable.address: 1})
    assert rig.upstream_file.read_text() == before_text
    assert workers(rig) == before_workers  # nothing was reloaded
    assert await rig.router.weights(UPSTREAM) == {rig.stable.address: 1, rig.canary.address: 1}
    assert Counter(await answers(rig, "/", 4)) == {"stable": 2, "canary": 2}
    assert [p.name for p in rig.upstream_file.parent.iterdir()] == [rig.upstream_file.name]


async def test_a_reload_that_cannot_happen_puts_the_old_file_back(canary_rig: CanaryRig) -> None:
    rig = canary_rig
    before = rig.upstream_file.read_text()
    dead = rig.settings.pid_file.with_name("dead.pid")
    dead.write_text("999999999\n")  # beyond pid_max: no such process
    router = NginxRouter(dataclasses.replace(rig.settings, pid_file=dead))
    with pytest.raises(ReloadFailed, match=r"upstream app: cannot signal the nginx master"):
        await router.set_weights(UPSTREAM, {rig.stable.address: 1, rig.canary.address: 1})
    assert rig.upstream_file.read_text() == before


async def test_an_upstream_file_nginx_does_not_include_is_reported(
    canary_rig: CanaryRig,
) -> None:
    rig = canary_rig
    stray = rig.upstream_file.parent.parent / "stray.conf"  # outside the included directory
    settings = dataclasses.replace(rig.settings, upstreams={"other": UpstreamFile(stray)})
    with pytest.raises(ReadBackError, match=rf"upstream other is not in .*include {stray}"):
        await NginxRouter(settings).set_weights("other", {rig.stable.address: 1})
    with pytest.raises(RouterError, match=r"upstream app is not managed by this router \(other\)"):
        await NginxRouter(settings).weights(UPSTREAM)


async def test_a_sticky_header_keeps_each_user_on_one_version(canary_rig: CanaryRig) -> None:
    rig = canary_rig
    await rig.router.set_weights(UPSTREAM, {rig.stable.address: 1, rig.canary.address: 1})
    seen = {}
    for user in range(20):
        bodies = await answers(rig, "/sticky/", 5, **{STICKY_HEADER: f"user-{user}"})
        assert len(set(bodies)) == 1, (user, bodies)
        seen[user] = bodies[0]
    assert set(seen.values()) == {"stable", "canary"}  # users are split, each one kept
    # Without the header a request is routed by the weights alone, request by request.
    assert Counter(await answers(rig, "/sticky/", 4)) == {"stable": 2, "canary": 2}
    # Taking the canary out moves its users back: no sticky value outlives a rollback.
    await rig.router.set_weights(UPSTREAM, {rig.stable.address: 1, rig.canary.address: 0})
    for user in range(20):
        assert await answers(rig, "/sticky/", 1, **{STICKY_HEADER: f"user-{user}"}) == ["stable"]


async def test_a_retried_request_counts_against_the_failing_backend(
    canary_rig: CanaryRig,
) -> None:
    rig = canary_rig
    await rig.router.set_weights(UPSTREAM, {rig.stable.address: 1, rig.canary.address: 1})
    rig.canary.status = 500
    traffic = Traffic(rig.access_log)
    assert set(await answers(rig, "/retry/", 20)) == {"stable"}  # clients never see the 500
    assert traffic.poll() == 20
    retried = [r for r in traffic.requests if len(r.attempts) == 2]
    assert retried
    assert all([a.status for a in r.attempts] == [500, 200] for r in retried)
    stats = traffic.window()
    canary, stable = stats[rig.canary.address], stats[rig.stable.address]
    assert (canary.requests, canary.errors) == (len(retried), len(retried))
    assert (stable.requests, stable.errors) == (20, 0)
    assert canary.error_ratio == 1.0
