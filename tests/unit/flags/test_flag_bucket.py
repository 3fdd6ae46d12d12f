"""Rollout buckets: bit for bit Unleash's, checked against the real UnleashClient, and monotonic."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from UnleashClient import UnleashClient
from UnleashClient.cache import FileCache
from UnleashClient.utils import normalized_hash as unleash_normalized_hash

from opsmedic.flags.bucket import in_rollout, normalized_hash

IDS = 100_000
GROUP = "new_checkout"


def _ids() -> list[str]:
    """Ids of every shape users have: numbers, uuids, e-mails, and text beyond ASCII."""
    rng = random.Random(15)
    alphabet = "abcxyz019-_@.:éü中🙂 "
    ids = [str(i) for i in range(IDS // 4)]
    ids += [f"{rng.getrandbits(128):032x}" for _ in range(IDS // 4)]
    ids += [f"user{i}@example.com" for i in range(IDS // 4)]
    ids += ["".join(rng.choices(alphabet, k=rng.randint(1, 24))) for _ in range(IDS - len(ids))]
    return ids


@pytest.fixture(scope="module")
def unleash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnleashClient]:
    """The real SDK, bootstrapped (no server) with one flexibleRollout toggle per percentage
    from 0 to 100, all in the group GROUP: is_enabled("r{p}") is the SDK's own answer to
    "is this user in a p % rollout of new_checkout"."""
    cache = FileCache("opsmedic-test", directory=str(tmp_path_factory.mktemp("unleash")))
    toggles = [
        {
            "name": f"r{p}",
            "enabled": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": str(p), "stickiness": "userId", "groupId": GROUP},
                }
            ],
        }
        for p in range(101)
    ]
    cache.bootstrap_from_dict({"version": 1, "features": toggles})
    client = UnleashClient(
        "http://127.0.0.1:9/api",  # never reached: toggles are not fetched
        "opsmedic-test",
        cache=cache,
        disable_metrics=True,
        disable_registration=True,
    )
    client.initialize_client(fetch_toggles=False)
    try:
        yield client
    finally:
        client.destroy()


def test_it_computes_the_sdk_s_normalized_hash_for_every_id() -> None:
    ids = _ids()
    differ = [i for i in ids if normalized_hash(i, GROUP) != unleash_normalized_hash(i, GROUP)]
    assert differ == []
    # The variant seed Unleash uses, and another normalizer, agree too.
    for i in ids[:: IDS // 1000]:
        assert normalized_hash(i, GROUP, 1000, 86028157) == unleash_normalized_hash(
            i, GROUP, 1000, 86028157
        )


def test_the_sdk_s_flexible_rollout_puts_every_id_in_our_bucket(unleash: UnleashClient) -> None:
    """For each id, our bucket b: the SDK's strategy lets it into a b % rollout and keeps it
    out of a (b - 1) % one, so the SDK's bucket is exactly b; in_rollout says the same."""
    wrong = []
    for identifier in _ids():
        bucket = normalized_hash(identifier, GROUP)
        context = {"userId": identifier}
        sdk = [unleash.is_enabled(f"r{p}", context) for p in (bucket, bucket - 1)]
        ours = [in_rollout(p, identifier, GROUP) for p in (bucket, bucket - 1)]
        if sdk != [True, False] or ours != sdk:
            wrong.append((identifier, bucket))
    assert wrong == []


@given(st.text(max_size=40), st.text(min_size=1, max_size=40), st.integers(0, 100))
def test_raising_a_rollout_never_turns_anyone_off(identifier: str, group: str, low: int) -> None:
    was_in = in_rollout(low, identifier, group)
    assert all(in_rollout(p, identifier, group) for p in range(low, 101)) if was_in else True
    assert in_rollout(100, identifier, group)
    assert not in_rollout(0, identifier, group)


def test_rollouts_are_sticky_and_near_their_percentage() -> None:
    ids = [f"user-{i}" for i in range(10_000)]
    first = [in_rollout(33, i, GROUP) for i in ids]
    assert first == [in_rollout(33, i, GROUP) for i in ids]
    assert 3000 < sum(first) < 3600
    # Another flag (salt) picks other users: the same 33 % are not always the guinea pigs.
    other = [in_rollout(33, i, "dark_mode") for i in ids]
    assert sum(a and b for a, b in zip(first, other, strict=True)) < 1500
